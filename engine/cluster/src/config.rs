//! A node's configuration: [`ClusterConfig`] and the Raft timing of its
//! ranges ([`RaftTuning`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use holo_storage::EngineOptions;
use openraft::{Config, SnapshotPolicy};

/// Raft timing and log retention of every range.
#[derive(Debug, Clone)]
pub struct RaftTuning {
    /// Leader heartbeat interval.
    pub heartbeat_ms: u64,
    /// Smallest election timeout.
    pub election_min_ms: u64,
    /// Largest election timeout.
    pub election_max_ms: u64,
    /// A snapshot is built after this many applied entries; the log before
    /// it is then purged, keeping the last `logs_to_keep`.
    pub snapshot_every: u64,
    /// Log entries kept behind the last snapshot for lagging followers.
    pub logs_to_keep: u64,
}

impl Default for RaftTuning {
    fn default() -> Self {
        RaftTuning {
            heartbeat_ms: 100,
            election_min_ms: 600,
            election_max_ms: 1200,
            snapshot_every: 20_000,
            logs_to_keep: 2_000,
        }
    }
}

/// How a node joins or forms a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// This node's id (unique in the cluster, never reused).
    pub node_id: u64,
    /// The store's directory.
    pub data_dir: PathBuf,
    /// Storage engine options.
    pub engine: EngineOptions,
    /// Where the internal RPC server listens.
    pub listen: SocketAddr,
    /// The RPC address other nodes use (defaults to `listen`).
    pub advertise: Option<String>,
    /// The PostgreSQL endpoint other tools should use for this node.
    pub pg_addr: String,
    /// RPC addresses of nodes to join through.
    pub join: Vec<String>,
    /// Create a new cluster on a fresh store.
    pub bootstrap: bool,
    /// Replicas per range.
    pub replication_factor: usize,
    /// A range larger than this is split in two (0 = never).
    pub split_size_bytes: u64,
    /// A range serving more requests per second than this is split in two
    /// (0 = never).
    pub split_load_qps: u64,
    /// A peer that has not answered for this long is dead: its replicas
    /// are replaced on live nodes (zero = never).
    pub dead_node_after: Duration,
    /// Time between garbage-collection rounds.
    pub gc_interval: Duration,
    /// How long old row versions stay readable.
    pub gc_ttl: Duration,
    /// Raft timing.
    pub raft: RaftTuning,
}

impl RaftTuning {
    /// The openraft configuration every range's group runs with.
    pub(crate) fn raft_config(&self) -> Result<Config, String> {
        Config {
            cluster_name: "holo-fusion".into(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_min_ms,
            election_timeout_max: self.election_max_ms,
            install_snapshot_timeout: 30_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.logs_to_keep,
            max_payload_entries: 32,
            ..Config::default()
        }
        .validate()
        .map_err(|e| format!("raft timing: {e}"))
    }
}

impl ClusterConfig {
    /// A one-voter cluster in `data_dir` with default timing, for embedding
    /// and tests (`--single-node` builds the same from its flags): node 1,
    /// bootstrapped on first start, one replica per range, the internal RPC
    /// on an ephemeral loopback port, PostgreSQL at `pg_addr`.
    pub fn single_node(data_dir: PathBuf, engine: EngineOptions, pg_addr: String) -> ClusterConfig {
        ClusterConfig {
            node_id: 1,
            data_dir,
            engine,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise: None,
            pg_addr,
            join: Vec::new(),
            bootstrap: true,
            replication_factor: 1,
            split_size_bytes: 512 << 20,
            split_load_qps: 0,
            dead_node_after: Duration::ZERO,
            gc_interval: Duration::from_secs(60),
            gc_ttl: Duration::from_secs(600),
            raft: RaftTuning::default(),
        }
    }
}
