//! [`ClusterNode`]: one node of a replicated cluster: its store, its Raft
//! groups (one per range replica), the internal RPC server, the timestamp
//! oracle (while it leads the meta range) and the background work that keeps
//! ranges replicated and the meta range current.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use holo_kv::client::RetryPolicy;
use holo_kv::service::{KvWrite, RangeHeader, RangeService, WriteResponse};
use holo_kv::{KvClient, KvError};
use holo_raft::log_store::RangeLogStore;
use holo_raft::network::{
    RaftRpcKind, RaftTransport, RangeNetworkFactory, TransportError, dispatch,
};
use holo_raft::state_machine::{
    RangeStateMachine, SharedState, SmEvent, SmState, bootstrap_range, delete_range_state,
    load_state, local_ranges,
};
use holo_raft::{NodeAddr, RaftCommand, RaftResponse, RangeRaft};
use holo_storage::{
    Engine, EngineOptions, MvccStore, RangeDescriptor, RangeId, ReadOptions, ScanResult,
};
use holo_txn_types::{Mutation, MutationOp, Timestamp};
use openraft::{Config, SnapshotPolicy};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::directory::NodeHandle;
use crate::meta::{self, META_RANGE};
use crate::replica::RangeReplica;
use crate::rpc::{Handler, Reply, Request, Response, RpcClient};
use crate::status::{ClusterView, NodeStatus};
use crate::tso::{TsoBatcher, TsoState};

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ClusterIdent {
    node_id: u64,
}

const IDENT_KEY: &[u8] = b"cluster_ident";
/// How long a node request may take before the peer counts as unreachable.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts to reach the meta range's leader.
const META_ATTEMPTS: usize = 40;

/// One node of a cluster.
pub struct ClusterNode {
    config: ClusterConfig,
    addr: NodeAddr,
    engine: Arc<Engine>,
    store: Arc<MvccStore>,
    raft_config: Arc<Config>,
    replicas: RwLock<BTreeMap<RangeId, Arc<RangeReplica>>>,
    nodes: RwLock<BTreeMap<u64, NodeAddr>>,
    meta_leader: AtomicU64,
    pub(crate) hints: LeaderHints,
    rpc: Arc<RpcClient>,
    transport: Arc<dyn RaftTransport>,
    events: UnboundedSender<SmEvent>,
    replica_lock: tokio::sync::Mutex<()>,
    pub(crate) tso: TsoState,
    tso_batcher: Arc<TsoBatcher>,
    kv: RwLock<Option<Arc<KvClient>>>,
    liveness: crate::rebalance::Liveness,
    gc_removed: AtomicU64,
    me: Weak<ClusterNode>,
}

impl std::fmt::Debug for ClusterNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterNode")
            .field("node_id", &self.config.node_id)
            .finish()
    }
}

/// Errors starting a node.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store or its Raft state could not be opened.
    #[error("store: {0}")]
    Store(String),
    /// The flags do not fit the store.
    #[error("{0}")]
    Config(String),
    /// The RPC address could not be bound.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The cluster did not become ready in time.
    #[error("cluster not ready: {0}")]
    NotReady(String),
}

struct GrpcTransport {
    rpc: Arc<RpcClient>,
}

#[async_trait]
impl RaftTransport for GrpcTransport {
    async fn raft_rpc(
        &self,
        target: u64,
        addr: &NodeAddr,
        range: RangeId,
        kind: RaftRpcKind,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, TransportError> {
        let req = Request::Raft {
            range,
            kind,
            payload,
        };
        match self.rpc.call(target, &addr.rpc, &req, timeout).await {
            Ok(Response::Raft(bytes)) => Ok(bytes),
            Ok(other) => Err(TransportError::Protocol {
                node: target,
                reason: format!("unexpected answer {other:?}"),
            }),
            Err(KvError::NodeUnreachable { reason, .. }) => Err(TransportError::Unreachable {
                node: target,
                reason,
            }),
            Err(e) => Err(TransportError::Protocol {
                node: target,
                reason: e.to_string(),
            }),
        }
    }
}

fn store_err(e: impl std::fmt::Display) -> StartError {
    StartError::Store(e.to_string())
}

impl ClusterNode {
    /// Opens the store, starts the node's Raft groups and RPC server, joins
    /// or bootstraps the cluster, and returns once the node can route
    /// requests (the meta range answers).
    pub async fn start(config: ClusterConfig) -> Result<Arc<ClusterNode>, StartError> {
        if config.node_id == 0 {
            return Err(StartError::Config("--node-id must be at least 1".into()));
        }
        if config.replication_factor == 0 {
            return Err(StartError::Config(
                "--replication-factor must be at least 1".into(),
            ));
        }
        let engine =
            Arc::new(Engine::open(&config.data_dir, config.engine.clone()).map_err(store_err)?);
        match engine.get_meta(IDENT_KEY).map_err(store_err)? {
            Some(bytes) => {
                let ident: ClusterIdent = serde_json::from_slice(&bytes)
                    .map_err(|e| StartError::Store(format!("corrupt node identity: {e}")))?;
                if ident.node_id != config.node_id {
                    return Err(StartError::Config(format!(
                        "the store in {} belongs to node {}, not --node-id {}",
                        config.data_dir.display(),
                        ident.node_id,
                        config.node_id
                    )));
                }
            }
            None => {
                let ident = serde_json::to_vec(&ClusterIdent {
                    node_id: config.node_id,
                })
                .map_err(store_err)?;
                engine.put_meta(IDENT_KEY, &ident).map_err(store_err)?;
            }
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Listen {
                addr: config.listen,
                source,
            })?;
        let bound = listener.local_addr().map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
        let addr = NodeAddr {
            rpc: config
                .advertise
                .clone()
                .unwrap_or_else(|| bound.to_string()),
            pg: config.pg_addr.clone(),
        };
        let mut existing = local_ranges(&engine).map_err(store_err)?;
        if existing.is_empty() && config.bootstrap {
            let members = BTreeMap::from([(config.node_id, addr.clone())]);
            bootstrap_range(
                &engine,
                &meta::meta_descriptor([config.node_id]),
                members.clone(),
            )
            .map_err(store_err)?;
            bootstrap_range(
                &engine,
                &meta::first_data_descriptor(config.node_id),
                members,
            )
            .map_err(store_err)?;
            tracing::info!(node_id = config.node_id, "bootstrapped a new cluster");
            existing = local_ranges(&engine).map_err(store_err)?;
        } else if existing.is_empty() && config.join.is_empty() {
            return Err(StartError::Config(
                "a new node needs --join <addr> (or --bootstrap for the first node of a new cluster)".into(),
            ));
        }
        drop_absorbed_ranges(&engine, &mut existing).map_err(store_err)?;
        let store = Arc::new(MvccStore::new(engine.clone()).map_err(store_err)?);
        let t = &config.raft;
        let raft_config = Config {
            cluster_name: "holo-fusion".into(),
            heartbeat_interval: t.heartbeat_ms,
            election_timeout_min: t.election_min_ms,
            election_timeout_max: t.election_max_ms,
            install_snapshot_timeout: 30_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(t.snapshot_every),
            max_in_snapshot_log_to_keep: t.logs_to_keep,
            max_payload_entries: 32,
            ..Config::default()
        }
        .validate()
        .map_err(|e| StartError::Config(format!("raft timing: {e}")))?;
        let rpc = Arc::new(RpcClient::new());
        let (events, events_rx) = unbounded_channel();
        let node = Arc::new_cyclic(|me| ClusterNode {
            addr: addr.clone(),
            engine,
            store,
            raft_config: Arc::new(raft_config),
            replicas: RwLock::new(BTreeMap::new()),
            nodes: RwLock::new(BTreeMap::from([(config.node_id, addr.clone())])),
            meta_leader: AtomicU64::new(0),
            hints: RwLock::new(HashMap::new()),
            transport: Arc::new(GrpcTransport { rpc: rpc.clone() }),
            rpc,
            events,
            replica_lock: tokio::sync::Mutex::new(()),
            tso: TsoState::default(),
            tso_batcher: Arc::new(TsoBatcher::default()),
            kv: RwLock::new(None),
            liveness: crate::rebalance::Liveness::default(),
            gc_removed: AtomicU64::new(0),
            me: me.clone(),
            config,
        });
        let kv = Arc::new(KvClient::new(
            Arc::new(NodeHandle::new(&node)),
            vec![Arc::new(NodeHandle::new(&node)) as Arc<dyn RangeService>],
            Arc::new(NodeHandle::new(&node)),
            RetryPolicy {
                max_route_attempts: 40,
                ..RetryPolicy::default()
            },
        ));
        *node.kv.write() = Some(kv);
        for state in existing {
            node.open_replica(state).await.map_err(store_err)?;
        }
        let handler: Arc<dyn Handler> = node.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::rpc::serve(listener, handler, std::future::pending()).await {
                tracing::error!(error = %e, "internal RPC server stopped");
            }
        });
        tokio::spawn(Self::event_loop(Arc::downgrade(&node), events_rx));
        node.join_cluster().await?;
        crate::background::spawn(&node);
        node.wait_ready(Duration::from_secs(60)).await?;
        Ok(node)
    }

    /// The node's id.
    pub fn node_id(&self) -> u64 {
        self.config.node_id
    }

    /// The node's addresses.
    pub fn addr(&self) -> &NodeAddr {
        &self.addr
    }

    /// The configuration the node started with.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The node's MVCC store.
    pub fn store(&self) -> &Arc<MvccStore> {
        &self.store
    }

    /// The client of other nodes' internal RPC.
    pub(crate) fn rpc_client(&self) -> &Arc<RpcClient> {
        &self.rpc
    }

    /// Versions removed by this node's GC sweeps.
    pub(crate) fn gc_removed(&self) -> &AtomicU64 {
        &self.gc_removed
    }

    /// When each peer last answered a probe.
    pub(crate) fn liveness(&self) -> &crate::rebalance::Liveness {
        &self.liveness
    }

    /// The KV client routing through the cluster.
    pub fn kv(&self) -> Arc<KvClient> {
        match &*self.kv.read() {
            Some(kv) => kv.clone(),
            None => unreachable!("the KV client is set before the node is handed out"),
        }
    }

    pub(crate) fn arc(&self) -> Option<Arc<ClusterNode>> {
        self.me.upgrade()
    }

    /// Known nodes and their addresses.
    pub fn nodes(&self) -> BTreeMap<u64, NodeAddr> {
        self.nodes.read().clone()
    }

    pub(crate) fn add_nodes(&self, found: BTreeMap<u64, NodeAddr>) {
        let mut added = Vec::new();
        {
            let mut nodes = self.nodes.write();
            for (id, addr) in found {
                if nodes.get(&id) != Some(&addr) {
                    nodes.insert(id, addr.clone());
                    added.push((id, addr));
                }
            }
        }
        if added.is_empty() {
            return;
        }
        let kv = self.kv();
        for (id, addr) in added {
            if id != self.node_id() {
                tracing::info!(node = id, rpc = %addr.rpc, "learned node");
                kv.add_node(Arc::new(crate::remote::RemoteNode::new(
                    id,
                    addr.rpc,
                    self.rpc.clone(),
                )));
            }
        }
    }

    /// The local replica of `range`, if any.
    pub fn replica(&self, range: RangeId) -> Option<Arc<RangeReplica>> {
        self.replicas.read().get(&range).cloned()
    }

    /// Every local replica.
    pub fn replicas(&self) -> Vec<Arc<RangeReplica>> {
        self.replicas.read().values().cloned().collect()
    }

    fn local(&self, range: RangeId) -> Result<Arc<RangeReplica>, KvError> {
        self.replica(range).ok_or(KvError::RangeNotFound {
            range_id: range,
            node_id: self.node_id(),
        })
    }

    async fn open_replica(&self, state: SmState) -> Result<Arc<RangeReplica>, KvError> {
        let id = state.desc.id;
        let shared = SharedState::new(&state);
        let sm = RangeStateMachine::open(
            self.engine.clone(),
            self.store.clone(),
            state,
            shared.clone(),
            self.events.clone(),
        );
        let log = RangeLogStore::new(self.engine.clone(), id);
        let network = RangeNetworkFactory::new(id, self.transport.clone());
        let raft = RangeRaft::new(self.node_id(), self.raft_config.clone(), network, log, sm)
            .await
            .map_err(|e| KvError::Storage(format!("starting raft group of range {id}: {e}")))?;
        let lease_ms = self.config.raft.election_min_ms / 2;
        let replica = Arc::new(RangeReplica::new(
            self.node_id(),
            raft,
            shared,
            self.store.clone(),
            lease_ms,
        ));
        self.replicas.write().insert(id, replica.clone());
        Ok(replica)
    }

    /// The replica a peer's Raft message is for; a replica being added to
    /// this node is created empty and fills from the leader's snapshot.
    async fn replica_for_message(&self, range: RangeId) -> Result<Arc<RangeReplica>, KvError> {
        if let Some(r) = self.replica(range) {
            return Ok(r);
        }
        let _guard = self.replica_lock.lock().await;
        if let Some(r) = self.replica(range) {
            return Ok(r);
        }
        // A range merged away here stays gone: a stale replica elsewhere
        // must not recreate it (and overwrite the merged range's data).
        if holo_raft::state_machine::is_tombstoned(&self.engine, range)
            .map_err(|e| KvError::Storage(e.to_string()))?
        {
            return Err(KvError::RangeNotFound {
                range_id: range,
                node_id: self.node_id(),
            });
        }
        let state =
            match load_state(&self.engine, range).map_err(|e| KvError::Storage(e.to_string()))? {
                Some(s) => s,
                None => SmState::empty(range),
            };
        tracing::info!(%range, "creating replica for a peer's message");
        self.open_replica(state).await
    }

    async fn event_loop(node: Weak<ClusterNode>, mut rx: UnboundedReceiver<SmEvent>) {
        while let Some(ev) = rx.recv().await {
            let Some(node) = node.upgrade() else { return };
            match ev {
                SmEvent::Split { left, right } => {
                    if let Err(e) = node.on_split(&left, &right).await {
                        tracing::error!(range = %right.id, error = %e, "starting the right-hand range of a split failed");
                    }
                }
                SmEvent::Merged { left, right } => {
                    tracing::info!(left = %left.id, %right, "range merge applied");
                    node.destroy_replica(right).await;
                    node.kv().cache().invalidate(right);
                    node.kv().cache().invalidate(left.id);
                }
                // A snapshot of a merged range replaces the replicas of the
                // ranges it absorbed (their merge never applied here).
                SmEvent::SnapshotInstalled { desc } => {
                    for r in node.replicas() {
                        let d = r.descriptor();
                        if d.id != desc.id && r.initialized() && desc.covers(&d) {
                            tracing::info!(range = %d.id, by = %desc.id, "replica absorbed by a merged range's snapshot");
                            node.destroy_replica(d.id).await;
                        }
                    }
                }
                SmEvent::Membership { desc, members } => {
                    node.on_membership(&desc, &members).await;
                }
            }
        }
    }

    /// Deletes the data of `desc`'s span (a replica of `range` that left
    /// this node) unless a local replica overlaps it. Replicas are not
    /// created meanwhile: an uninitialized one (it may be receiving a
    /// snapshot) counts as overlapping everything.
    pub(crate) async fn delete_span_data(&self, range: RangeId, desc: &RangeDescriptor) {
        let _guard = self.replica_lock.lock().await;
        let overlapped = self.replicas().iter().any(|o| {
            !o.initialized()
                || o.descriptor()
                    .clamp(&desc.start_key, &desc.end_key)
                    .is_some()
        });
        if overlapped {
            return;
        }
        let mut batch = rocksdb::WriteBatch::default();
        let result = self
            .store
            .import_span(&mut batch, &desc.start_key, &desc.end_key, &[])
            .map_err(|e| e.to_string())
            .and_then(|()| {
                self.engine
                    .write_with_sync(batch, false)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = result {
            tracing::error!(%range, error = %e, "deleting a removed replica's data failed");
        }
    }

    /// Stops the local replica of `range` and deletes its Raft state (its
    /// data keys belong to the range that absorbed it).
    pub(crate) async fn destroy_replica(&self, range: RangeId) {
        let _guard = self.replica_lock.lock().await;
        let replica = self.replicas.write().remove(&range);
        if let Some(r) = replica {
            r.shutdown().await;
        }
        let mut batch = rocksdb::WriteBatch::default();
        let result = delete_range_state(&mut batch, &self.engine, range)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                self.engine
                    .write_with_sync(batch, true)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = result {
            tracing::error!(%range, error = %e, "deleting a merged range's raft state failed");
        }
    }

    /// Whether a snapshot of `range` spanning `desc` may be installed here.
    /// A local replica that overlaps the span without lying inside it is a
    /// range that has not applied the split creating `range` yet: the split
    /// will create the replica, and data installed now would be mixed with
    /// the older range's later applies. (Replicas inside the span are ranges
    /// the snapshot's merge absorbed; installing replaces them.)
    fn accept_snapshot(&self, range: RangeId, desc: &RangeDescriptor) -> Result<(), String> {
        for o in self.replicas() {
            let d = o.descriptor();
            if d.id == range || !o.initialized() || desc.covers(&d) {
                continue;
            }
            if d.clamp(&desc.start_key, &desc.end_key).is_some() {
                return Err(format!(
                    "range {range}'s span overlaps local range {} (its split has not applied here yet)",
                    d.id
                ));
            }
        }
        Ok(())
    }

    async fn on_split(
        &self,
        left: &RangeDescriptor,
        right: &RangeDescriptor,
    ) -> Result<(), KvError> {
        let _guard = self.replica_lock.lock().await;
        if let Some(existing) = self.replica(right.id) {
            if existing.initialized() {
                return Ok(());
            }
            // Created empty by a faster peer's message before the split
            // applied here: restart it from the split's state.
            existing.shutdown().await;
            self.replicas.write().remove(&right.id);
        }
        let Some(state) =
            load_state(&self.engine, right.id).map_err(|e| KvError::Storage(e.to_string()))?
        else {
            return Err(KvError::Storage(format!(
                "split state of range {} missing",
                right.id
            )));
        };
        let replica = self.open_replica(state).await?;
        tracing::info!(left = %left.id, right = %right.id, "range split applied");
        // The left range's leader campaigns for the right range right away,
        // so its clients see a short stale-route retry, not an election.
        if self.replica(left.id).is_some_and(|l| l.is_leader()) {
            let _ = replica.raft().trigger().elect().await;
        }
        Ok(())
    }

    async fn join_cluster(&self) -> Result<(), StartError> {
        if self.config.join.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let req = Request::Join {
            node_id: self.node_id(),
            addr: self.addr.clone(),
        };
        loop {
            for seed in &self.config.join {
                if *seed == self.addr.rpc {
                    continue;
                }
                match self.rpc.call(0, seed, &req, Duration::from_secs(5)).await {
                    Ok(Response::Cluster(view)) => {
                        self.add_nodes(view.nodes);
                        if let Some(l) = view.meta_leader {
                            self.meta_leader.store(l, Ordering::Relaxed);
                        }
                        tracing::info!(seed = %seed, "joined the cluster");
                        return Ok(());
                    }
                    Ok(other) => {
                        tracing::warn!(seed = %seed, answer = ?other, "unexpected join answer")
                    }
                    Err(e) => {
                        tracing::info!(seed = %seed, error = %e, "join attempt failed; retrying")
                    }
                }
            }
            // A node with replicas of its own (restarted, or the
            // bootstrapping node) serves without a seed's answer.
            if !self.replicas.read().is_empty() {
                tracing::info!("no seed answered; continuing with the local replicas");
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(StartError::NotReady(format!(
                    "no node of --join {:?} accepted this node",
                    self.config.join
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn wait_ready(&self, limit: Duration) -> Result<(), StartError> {
        let deadline = Instant::now() + limit;
        loop {
            let err = match self.kv().cache().locate(meta::META_END).await {
                Ok(_) => match self.register_node(self.node_id(), self.addr.clone()).await {
                    Ok(()) => return Ok(()),
                    Err(e) => e,
                },
                Err(e) => e,
            };
            if Instant::now() > deadline {
                return Err(StartError::NotReady(err.to_string()));
            }
            tracing::debug!(error = %err, "waiting for the cluster");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The meta range's leader as this node best knows it.
    pub(crate) fn meta_leader_hint(&self) -> u64 {
        if let Some(l) = self.replica(META_RANGE).and_then(|r| r.leader()) {
            return l;
        }
        match self.meta_leader.load(Ordering::Relaxed) {
            0 => self.node_id(),
            l => l,
        }
    }

    fn rotate_meta_leader(&self, after: u64) {
        let nodes: Vec<u64> = self.nodes.read().keys().copied().collect();
        let next = nodes
            .iter()
            .copied()
            .find(|n| *n > after)
            .or_else(|| nodes.first().copied());
        if let Some(n) = next {
            self.meta_leader.store(n, Ordering::Relaxed);
        }
    }

    /// Sends `req` to node `node_id` (handled in-process when it is this
    /// node).
    pub(crate) async fn call_node(&self, node_id: u64, req: Request) -> Reply {
        if node_id == self.node_id() {
            return self.handle(req).await;
        }
        let addr = self.nodes.read().get(&node_id).map(|a| a.rpc.clone());
        let Some(addr) = addr else {
            return Err(KvError::NodeUnreachable {
                node_id,
                reason: "address unknown".into(),
            });
        };
        self.rpc.call(node_id, &addr, &req, RPC_TIMEOUT).await
    }

    /// Sends a request built by `make` to the meta range's leader, following
    /// redirects and retrying unreachable nodes with backoff.
    pub(crate) async fn meta_call(&self, make: impl Fn() -> Request) -> Reply {
        let target = AtomicU64::new(0);
        retry_stale(
            || {
                target.store(self.meta_leader_hint(), Ordering::Relaxed);
                self.call_node(target.load(Ordering::Relaxed), make())
            },
            |e| match e {
                KvError::NotLeader {
                    leader: Some(l), ..
                } if *l != target.load(Ordering::Relaxed) => {
                    self.meta_leader.store(*l, Ordering::Relaxed);
                    true
                }
                KvError::Unavailable(_) => false,
                _ => {
                    self.rotate_meta_leader(target.load(Ordering::Relaxed));
                    false
                }
            },
        )
        .await
    }

    /// A timestamp from the oracle.
    pub async fn timestamp(&self) -> Result<Timestamp, KvError> {
        if let Some(meta) = self.replica(META_RANGE)
            && meta.is_leader()
        {
            return self.tso.next(&meta).await;
        }
        let node = self
            .arc()
            .ok_or_else(|| KvError::Unavailable("the node is shutting down".into()))?;
        self.tso_batcher
            .get(move |count| {
                let node = node.clone();
                async move {
                    match node.meta_call(|| Request::Tso { count }).await? {
                        Response::Tso(ts) => Ok(ts),
                        other => Err(KvError::Unavailable(format!(
                            "unexpected oracle answer {other:?}"
                        ))),
                    }
                }
            })
            .await
    }

    fn meta_header() -> RangeHeader {
        RangeHeader::for_range(&meta::meta_descriptor([]))
    }

    /// Scans the meta range at a fresh timestamp.
    pub(crate) async fn meta_scan(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
    ) -> Result<ScanResult, KvError> {
        let read_ts = self.timestamp().await?;
        match self
            .meta_call(|| Request::Scan {
                header: Self::meta_header(),
                start: start.clone(),
                end: end.clone(),
                read: ReadOptions::at(read_ts),
                limit: limit as u64,
            })
            .await?
        {
            Response::Scan(s) => Ok(s),
            other => Err(KvError::Unavailable(format!(
                "unexpected meta answer {other:?}"
            ))),
        }
    }

    /// The value of `key` in the meta range, if any.
    pub(crate) async fn meta_get(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, KvError> {
        let mut end = key.clone();
        end.push(0);
        let scan = self.meta_scan(key, end, 1).await?;
        Ok(scan.pairs.into_iter().next().map(|(_, v)| v))
    }

    /// The descriptor the meta range holds for the range ending at
    /// `end_key` (an unreadable value counts as none).
    pub(crate) async fn meta_descriptor_ending_at(
        &self,
        end_key: &[u8],
    ) -> Result<Option<RangeDescriptor>, KvError> {
        let value = self.meta_get(meta::descriptor_key(end_key)).await?;
        Ok(value.and_then(|v| holo_raft::codec::decode(&v).ok()))
    }

    /// Writes `changes` to the meta range in one transaction that started at
    /// `start_ts` (fails with a write conflict when a key changed since).
    pub(crate) async fn meta_write(
        &self,
        changes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        start_ts: Timestamp,
    ) -> Result<(), KvError> {
        let mutations: Vec<Mutation> = changes
            .into_iter()
            .map(|(key, value)| Mutation {
                key,
                op: match value {
                    Some(v) => MutationOp::Put(v),
                    None => MutationOp::Delete,
                },
            })
            .collect();
        match self
            .meta_call(|| Request::Write {
                header: Self::meta_header(),
                write: KvWrite::OnePc {
                    mutations: mutations.clone(),
                    start_ts,
                },
            })
            .await?
        {
            Response::Write(_) => Ok(()),
            other => Err(KvError::Unavailable(format!(
                "unexpected meta answer {other:?}"
            ))),
        }
    }

    /// Records a node's addresses in the registry.
    pub(crate) async fn register_node(&self, node_id: u64, addr: NodeAddr) -> Result<(), KvError> {
        let value = holo_raft::codec::encode(&addr).map_err(|e| KvError::Storage(e.to_string()))?;
        let start_ts = self.timestamp().await?;
        self.meta_write(vec![(meta::node_key(node_id), Some(value))], start_ts)
            .await?;
        self.add_nodes(BTreeMap::from([(node_id, addr)]));
        Ok(())
    }

    /// Reads the node registry.
    pub(crate) async fn read_registry(&self) -> Result<BTreeMap<u64, NodeAddr>, KvError> {
        let (start, end) = meta::node_span();
        let scan = self.meta_scan(start, end, 10_000).await?;
        let mut out = BTreeMap::new();
        for (k, v) in scan.pairs {
            if let (Some(id), Ok(addr)) = (
                meta::node_id_of(&k),
                holo_raft::codec::decode::<NodeAddr>(&v),
            ) {
                out.insert(id, addr);
            }
        }
        Ok(out)
    }

    /// Allocates a cluster-unique range id.
    pub(crate) async fn allocate_range_id(&self) -> Result<RangeId, KvError> {
        for _ in 0..20 {
            let start_ts = self.timestamp().await?;
            let key = meta::range_id_key();
            let scan = self
                .meta_call(|| Request::Get {
                    header: Self::meta_header(),
                    key: key.clone(),
                    read: ReadOptions::at(start_ts),
                })
                .await?;
            let current = match scan {
                Response::Get(Some(v)) => u64::from_be_bytes(
                    v.as_slice()
                        .try_into()
                        .map_err(|_| KvError::Storage("corrupt range id counter".into()))?,
                ),
                Response::Get(None) => meta::FIRST_DATA_RANGE.0,
                other => {
                    return Err(KvError::Unavailable(format!(
                        "unexpected meta answer {other:?}"
                    )));
                }
            };
            let next = current + 1;
            match self
                .meta_write(vec![(key, Some(next.to_be_bytes().to_vec()))], start_ts)
                .await
            {
                Ok(()) => return Ok(RangeId(next)),
                Err(KvError::Key(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(KvError::Unavailable(
            "range id allocation kept conflicting".into(),
        ))
    }

    /// Writes `descs` into the meta range (each under its end key).
    pub(crate) async fn publish_descriptors(
        &self,
        descs: &[RangeDescriptor],
    ) -> Result<(), KvError> {
        for _ in 0..10 {
            let start_ts = self.timestamp().await?;
            let mut changes = Vec::new();
            for d in descs {
                let value =
                    holo_raft::codec::encode(d).map_err(|e| KvError::Storage(e.to_string()))?;
                changes.push((meta::descriptor_key(&d.end_key), Some(value)));
            }
            match self.meta_write(changes, start_ts).await {
                Ok(()) => return Ok(()),
                Err(KvError::Key(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(e) => return Err(e),
            }
        }
        Err(KvError::Unavailable(
            "publishing range descriptors kept conflicting".into(),
        ))
    }

    /// Splits at `key` on request (`SPLIT AT`, `holoctl split`): the
    /// boundary is kept by automatic merging.
    pub async fn admin_split(
        &self,
        key: Vec<u8>,
    ) -> Result<(RangeDescriptor, RangeDescriptor), KvError> {
        let pair = self.split_at(key.clone()).await?;
        self.set_sticky(&key, true).await?;
        Ok(pair)
    }

    /// Splits the range holding `key` at `key`, retrying while the route is
    /// stale (a range that just split is still electing its leader).
    pub async fn split_at(
        &self,
        key: Vec<u8>,
    ) -> Result<(RangeDescriptor, RangeDescriptor), KvError> {
        let kv = self.kv();
        retry_stale(
            || self.split_once(key.clone()),
            |e| {
                if let Some(loc) = kv.cache().peek(&key) {
                    kv.cache().on_stale(loc.desc.id, e);
                }
                false
            },
        )
        .await
    }

    /// One split attempt: at the leaseholder, or forwarded to it.
    async fn split_once(
        &self,
        key: Vec<u8>,
    ) -> Result<(RangeDescriptor, RangeDescriptor), KvError> {
        let loc = self.kv().cache().locate(&key).await?;
        if loc.desc.id == META_RANGE {
            return Err(KvError::Storage("the meta range cannot be split".into()));
        }
        if loc.desc.start_key == key {
            return Ok((loc.desc.clone(), loc.desc));
        }
        let replica = match self.replica(loc.desc.id) {
            Some(r) if r.is_leader() => r,
            _ => {
                return match self
                    .call_node(loc.leaseholder, Request::Split { key: key.clone() })
                    .await
                {
                    Ok(Response::Done) => {
                        self.kv().cache().invalidate(loc.desc.id);
                        let left = self.kv().cache().locate(&loc.desc.start_key).await?;
                        let right = self.kv().cache().locate(&key).await?;
                        Ok((left.desc, right.desc))
                    }
                    Ok(other) => Err(KvError::Unavailable(format!(
                        "unexpected split answer {other:?}"
                    ))),
                    Err(e) => Err(e),
                };
            }
        };
        let new_range_id = self.allocate_range_id().await?;
        let (left, right) = match replica
            .propose(RaftCommand::Split {
                split_key: key,
                new_range_id,
            })
            .await?
        {
            RaftResponse::Split(Ok(pair)) => pair,
            RaftResponse::Split(Err(e)) => return Err(replica.apply_error(e)),
            other => {
                return Err(KvError::Storage(format!(
                    "unexpected split result {other:?}"
                )));
            }
        };
        self.publish_descriptors(&[left.clone(), right.clone()])
            .await?;
        self.kv().cache().invalidate(left.id);
        tracing::info!(left = %left.id, right = %right.id, "split range");
        Ok((left, right))
    }

    /// The node's status.
    pub fn status(&self) -> NodeStatus {
        NodeStatus {
            node_id: self.node_id(),
            addr: self.addr.clone(),
            cluster: self.view(),
            replicas: self.replicas().iter().map(|r| r.status()).collect(),
            gc_safe_point: self.store.gc_safe_point(),
            gc_versions_removed: self.gc_removed.load(Ordering::Relaxed),
        }
    }

    fn view(&self) -> ClusterView {
        ClusterView {
            nodes: self.nodes(),
            meta_leader: Some(self.meta_leader_hint()),
        }
    }

    /// Moves the lease (Raft leadership) of `range` to node `to`. Runs at
    /// the current leaseholder (other nodes forward once): it stops
    /// serving and heartbeating the range, so followers' leader leases run
    /// out, and has `to` campaign until it leads or the attempt times out.
    pub async fn transfer_lease(&self, range: RangeId, to: u64) -> Result<(), KvError> {
        let replica = self.local(range).ok();
        let Some(replica) = replica.filter(|r| r.is_leader()) else {
            let leader = self.replica(range).and_then(|r| r.leader());
            return match leader {
                Some(l) if l != self.node_id() => match self
                    .call_node(l, Request::TransferLease { range, to })
                    .await?
                {
                    Response::Done => Ok(()),
                    other => Err(KvError::Unavailable(format!("unexpected answer {other:?}"))),
                },
                _ => Err(KvError::NotLeader {
                    range_id: range,
                    leader,
                }),
            };
        };
        if to == self.node_id() {
            return Ok(());
        }
        if !replica.voters().contains(&to) {
            return Err(KvError::Storage(format!(
                "node {to} holds no voting replica of range {range}"
            )));
        }
        tracing::info!(%range, to, "transferring lease");
        replica.begin_transfer(to);
        replica.raft().runtime_config().heartbeat(false);
        let deadline =
            Instant::now() + Duration::from_millis(self.config.raft.election_max_ms * 3 + 2_000);
        let mut result = Err(KvError::Unavailable(format!(
            "node {to} did not take the lease of range {range} in time"
        )));
        while Instant::now() < deadline {
            let _ = self.call_node(to, Request::Campaign { range }).await;
            tokio::time::sleep(Duration::from_millis(self.config.raft.heartbeat_ms * 2)).await;
            if replica.leader() == Some(to) {
                result = Ok(());
                break;
            }
        }
        replica.raft().runtime_config().heartbeat(true);
        replica.end_transfer();
        result
    }

    /// Voters of every local range this node leads that want another
    /// replica: `(range, voters)`.
    pub(crate) fn under_replicated(&self) -> Vec<(Arc<RangeReplica>, BTreeSet<u64>)> {
        let want = self.config.replication_factor.min(self.live_nodes().len());
        let mut out = Vec::new();
        for r in self.replicas() {
            if !r.is_leader() || !r.initialized() || r.frozen() != 0 {
                continue;
            }
            if let Some(voters) = r.settled_voters()
                && voters.len() < want
            {
                out.push((r, voters));
            }
        }
        // The meta range first: everything else depends on it.
        out.sort_by_key(|(r, _)| r.id() != META_RANGE);
        out
    }

    /// Adds one replica to `replica`'s range on the live node without one
    /// that holds the fewest replicas.
    pub(crate) async fn add_replica(
        &self,
        replica: &RangeReplica,
        voters: &BTreeSet<u64>,
    ) -> Result<(), KvError> {
        let counts = self.replica_counts().await?;
        let candidate = counts
            .iter()
            .filter(|(id, _)| !voters.contains(id))
            .min_by_key(|(id, c)| (**c, **id))
            .map(|(id, _)| *id);
        match candidate {
            Some(id) => self.change_replicas(replica, Some(id), None).await,
            None => Ok(()),
        }
    }
}

/// Deletes the Raft state of ranges a merged range absorbed whose
/// deletion a crash interrupted: their span lies inside another local
/// range of a newer generation.
fn drop_absorbed_ranges(engine: &Engine, states: &mut Vec<SmState>) -> Result<(), String> {
    let absorbed: Vec<RangeId> = states
        .iter()
        .filter(|s| {
            !s.desc.replicas.is_empty()
                && states.iter().any(|o| {
                    o.desc.id != s.desc.id
                        && !o.desc.replicas.is_empty()
                        && o.desc.covers(&s.desc)
                        && o.desc.epoch.version > s.desc.epoch.version
                })
        })
        .map(|s| s.desc.id)
        .collect();
    if absorbed.is_empty() {
        return Ok(());
    }
    let mut batch = rocksdb::WriteBatch::default();
    for id in &absorbed {
        tracing::info!(range = %id, "dropping the raft state of a merged-away range");
        delete_range_state(&mut batch, engine, *id).map_err(|e| e.to_string())?;
    }
    engine
        .write_with_sync(batch, true)
        .map_err(|e| e.to_string())?;
    states.retain(|s| !absorbed.contains(&s.desc.id));
    Ok(())
}

impl ClusterNode {
    /// Fails unless this node leads the range holding `key` (a split or
    /// merge forwarded here must run at the leaseholder).
    async fn lead_range_of(&self, key: &[u8]) -> Result<(), KvError> {
        let loc = self.kv().cache().locate(key).await?;
        match self.replica(loc.desc.id) {
            Some(r) if r.is_leader() => Ok(()),
            Some(r) => Err(KvError::NotLeader {
                range_id: r.id(),
                leader: r.leader(),
            }),
            None => Err(KvError::RangeNotFound {
                range_id: loc.desc.id,
                node_id: self.node_id(),
            }),
        }
    }
}

/// Runs `op` until it stops failing with a stale route or `Unavailable`,
/// at most [`META_ATTEMPTS`] times. `on_stale` learns from each failure and
/// says whether to retry at once (a named leader) instead of after a
/// jittered backoff.
pub(crate) async fn retry_stale<T, Fut>(
    mut op: impl FnMut() -> Fut,
    mut on_stale: impl FnMut(&KvError) -> bool,
) -> Result<T, KvError>
where
    Fut: std::future::Future<Output = Result<T, KvError>>,
{
    let retry = RetryPolicy::default();
    let mut last = None;
    for attempt in 0..META_ATTEMPTS {
        match op().await {
            Err(e) if e.is_stale_route() || matches!(e, KvError::Unavailable(_)) => {
                let at_once = on_stale(&e);
                last = Some(e);
                if !at_once {
                    tokio::time::sleep(retry.backoff(attempt)).await;
                }
            }
            other => return other,
        }
    }
    Err(KvError::RoutingExhausted {
        attempts: META_ATTEMPTS,
        last: last.map_or_else(String::new, |e| e.to_string()),
    })
}

#[async_trait]
impl Handler for ClusterNode {
    async fn handle(&self, request: Request) -> Reply {
        match request {
            Request::Raft {
                range,
                kind,
                payload,
            } => {
                let replica = self.replica_for_message(range).await?;
                dispatch(replica.raft(), kind, &payload, |desc| {
                    self.accept_snapshot(range, desc)
                })
                .await
                .map(Response::Raft)
                .map_err(|e| KvError::Unavailable(e.to_string()))
            }
            Request::Get { header, key, read } => self
                .local(header.range_id)?
                .get(header, key, read)
                .await
                .map(Response::Get),
            Request::Scan {
                header,
                start,
                end,
                read,
                limit,
            } => self
                .local(header.range_id)?
                .scan(header, start, end, read, limit as usize)
                .await
                .map(Response::Scan),
            Request::Write { header, write } => {
                let replica = self.local(header.range_id)?;
                let tso = NodeHandle::new_from(self);
                replica
                    .write(header, write, &tso)
                    .await
                    .map(Response::Write)
            }
            Request::Tso { count } => {
                let meta = self.local(META_RANGE)?;
                self.tso.next_batch(&meta, count).await.map(Response::Tso)
            }
            Request::Join { node_id, addr } => {
                self.register_node(node_id, addr).await?;
                if let Ok(registry) = self.read_registry().await {
                    self.add_nodes(registry);
                }
                Ok(Response::Cluster(self.view()))
            }
            Request::Status => Ok(Response::Status(self.status())),
            Request::Ping => Ok(Response::Done),
            Request::GcPrepare { bound, resolve } => self.gc_prepare(bound, resolve).await,
            Request::Split { key } => {
                self.lead_range_of(&key).await?;
                self.split_once(key).await.map(|_| Response::Done)
            }
            Request::AdminSplit { key } => self.admin_split(key).await.map(|_| Response::Done),
            Request::Merge { key } => {
                self.lead_range_of(&key).await?;
                self.merge_once(key).await.map(|_| Response::Done)
            }
            Request::AdminMerge { key } => self.admin_merge(key).await.map(|_| Response::Done),
            Request::Freeze { range, nonce } => self.freeze_local(range, nonce).await,
            Request::Unfreeze { range, nonce } => self.unfreeze_local(range, nonce).await,
            Request::WaitApplied {
                range,
                index,
                nonce,
            } => self.wait_frozen(range, index, nonce).await,
            Request::MergeAbort {
                range,
                nonce,
                right_start,
            } => self.merge_abort_local(range, nonce, right_start).await,
            Request::TransferLease { range, to } => {
                self.transfer_lease(range, to).await.map(|_| Response::Done)
            }
            Request::Campaign { range } => {
                self.local(range)?
                    .raft()
                    .trigger()
                    .elect()
                    .await
                    .map_err(|e| KvError::Unavailable(format!("range {range}: {e}")))?;
                Ok(Response::Done)
            }
        }
    }
}

#[async_trait]
impl RangeService for ClusterNode {
    fn node_id(&self) -> u64 {
        self.config.node_id
    }

    async fn get(
        &self,
        header: RangeHeader,
        key: Vec<u8>,
        read: ReadOptions,
    ) -> Result<Option<Vec<u8>>, KvError> {
        self.local(header.range_id)?.get(header, key, read).await
    }

    async fn scan(
        &self,
        header: RangeHeader,
        start: Vec<u8>,
        end: Vec<u8>,
        read: ReadOptions,
        limit: usize,
    ) -> Result<ScanResult, KvError> {
        self.local(header.range_id)?
            .scan(header, start, end, read, limit)
            .await
    }

    async fn write(&self, header: RangeHeader, write: KvWrite) -> Result<WriteResponse, KvError> {
        let replica = self.local(header.range_id)?;
        let tso = NodeHandle::new_from(self);
        replica.write(header, write, &tso).await
    }
}

/// Leader hints for ranges this node does not lead, learned from answers.
pub(crate) type LeaderHints = RwLock<HashMap<RangeId, u64>>;
