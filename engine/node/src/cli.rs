//! Command line of `holo-fusion`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// HoloFusion: a distributed SQL database speaking the PostgreSQL protocol.
#[derive(Debug, Parser)]
#[command(name = "holo-fusion", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a node.
    Start(StartArgs),
}

/// Options of `holo-fusion start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Run as a one-node cluster: node 1, one voter per range, bootstrapped
    /// on first start; the same range, Raft and transaction code as a
    /// replicated cluster. Without it the node is part of a replicated
    /// cluster: give `--node-id`, `--listen` and `--bootstrap` or `--join`.
    #[arg(long)]
    pub single_node: bool,

    /// This node's id in the cluster (unique, never reused).
    #[arg(long, env = "HOLO_NODE_ID")]
    pub node_id: Option<u64>,

    /// Address of the internal RPC endpoint (Raft and KV traffic); default
    /// 127.0.0.1:26257, or an ephemeral loopback port with --single-node.
    #[arg(long, env = "HOLO_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// RPC address other nodes should use (defaults to --listen).
    #[arg(long, env = "HOLO_ADVERTISE", value_name = "HOST:PORT")]
    pub advertise: Option<String>,

    /// PostgreSQL address other tools should use (defaults to --pg-listen).
    #[arg(long, env = "HOLO_PG_ADVERTISE", value_name = "HOST:PORT")]
    pub pg_advertise: Option<String>,

    /// RPC addresses of running nodes to join through (comma-separated).
    #[arg(
        long,
        env = "HOLO_JOIN",
        value_delimiter = ',',
        value_name = "ADDR,..."
    )]
    pub join: Vec<String>,

    /// Create a new cluster when the store is empty (first node only).
    #[arg(long)]
    pub bootstrap: bool,

    /// Replicas per range.
    #[arg(long, default_value_t = 3)]
    pub replication_factor: usize,

    /// Split a range once it holds this many MiB (0 = only on demand).
    #[arg(long, default_value_t = 64)]
    pub split_size_mib: u64,

    /// Split a range serving more requests per second than this at its
    /// leaseholder (0 = never).
    #[arg(long, default_value_t = 5000)]
    pub split_load_qps: u64,

    /// Seconds a peer may go without answering before it counts as dead
    /// and its replicas are replaced on live nodes (0 = never).
    #[arg(long, default_value_t = 60)]
    pub dead_node_secs: u64,

    /// Raft heartbeat interval in milliseconds (the election timeout is 6
    /// to 12 heartbeats; the lease half the shortest election timeout).
    #[arg(long, default_value_t = 150)]
    pub raft_heartbeat_ms: u64,

    /// Applied Raft entries between range snapshots (the log before a
    /// snapshot is truncated).
    #[arg(long, default_value_t = 20_000)]
    pub raft_snapshot_every: u64,

    /// Directory of the node's store (created when missing).
    #[arg(long, env = "HOLO_DATA_DIR", value_name = "DIR")]
    pub data_dir: PathBuf,

    /// Address of the PostgreSQL endpoint.
    #[arg(
        long,
        env = "HOLO_PG_LISTEN",
        default_value = "127.0.0.1:5433",
        value_name = "ADDR"
    )]
    pub pg_listen: SocketAddr,

    /// Acknowledge writes before the write-ahead log is synced to disk.
    /// Faster, but a machine crash (not a process crash) can lose the last
    /// acknowledged writes. Off by default.
    #[arg(long, env = "HOLO_NO_SYNC_WRITES")]
    pub no_sync_writes: bool,

    /// Block cache size in MiB.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub block_cache_mib: usize,

    /// Most concurrent client sessions (0 = unlimited); more are refused
    /// with FATAL 53300.
    #[arg(long, default_value_t = 512)]
    pub max_connections: usize,

    /// Time a client has from connecting until its session is ready (SSL
    /// negotiation, startup packet, authentication); slower handshakes are
    /// closed (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub startup_timeout: std::time::Duration,

    /// Most connections in their startup phase at once; a new connection
    /// evicts the oldest pending one, so idle sockets cannot hold the
    /// server.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_pending_startups: u64,

    /// How long old row versions stay readable before garbage collection
    /// (e.g. 10m, 1h).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub gc_ttl: std::time::Duration,

    /// Time between garbage-collection rounds.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub gc_interval: std::time::Duration,
}
