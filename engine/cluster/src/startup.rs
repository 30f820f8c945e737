//! Starting a node: opening (or bootstrapping) its store, starting the
//! Raft groups of its replicas and the internal RPC server, joining the
//! cluster, and waiting until the meta range answers.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use holo_kv::client::RetryPolicy;
use holo_kv::service::RangeService;
use holo_kv::{KvClient, KvError};
use holo_raft::NodeAddr;
use holo_raft::network::{RaftRpcKind, RaftTransport, TransportError};
use holo_raft::state_machine::{SmState, bootstrap_range, delete_range_state, local_ranges};
use holo_storage::{Engine, MvccStore, RangeId};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::unbounded_channel;

use crate::config::ClusterConfig;
use crate::directory::NodeHandle;
use crate::meta;
use crate::meta_client::MetaClient;
use crate::node::ClusterNode;
use crate::peers::Peers;
use crate::registry::{RegistryParts, ReplicaRegistry};
use crate::rpc::{AdminRequest, Handler, RaftMessage, Request, Response, RpcClient};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ClusterIdent {
    node_id: u64,
}

const IDENT_KEY: &[u8] = b"cluster_ident";
/// The identity the removed unreplicated single-node server wrote.
const LEGACY_IDENT_KEY: &[u8] = b"store_ident";

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

impl StartError {
    /// A stable code naming the variant.
    pub fn code(&self) -> &'static str {
        match self {
            StartError::Store(_) => "START_STORE",
            StartError::Config(_) => "START_CONFIG",
            StartError::Listen { .. } => "START_LISTEN",
            StartError::NotReady(_) => "START_NOT_READY",
        }
    }
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
        let req = Request::Raft(RaftMessage {
            range,
            kind,
            payload,
        });
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
        let ident = engine.get_meta(IDENT_KEY).map_err(store_err)?;
        if ident.is_none()
            && engine
                .get_meta(LEGACY_IDENT_KEY)
                .map_err(store_err)?
                .is_some()
        {
            return Err(StartError::Config(format!(
                "the store in {} was written by the unreplicated single-node server of \
                 earlier HoloFusion versions, which this version no longer has; dump it with \
                 that version (pg_dump --data-only) and load the dump into a new data directory",
                config.data_dir.display()
            )));
        }
        match ident {
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
        let raft_config = config.raft.raft_config().map_err(StartError::Config)?;
        let rpc = Arc::new(RpcClient::new());
        let (events, events_rx) = unbounded_channel();
        let peers = Arc::new(Peers::new(
            config.node_id,
            addr.clone(),
            config.dead_node_after,
            rpc.clone(),
        ));
        let registry = Arc::new(ReplicaRegistry::new(RegistryParts {
            me: config.node_id,
            engine,
            store: store.clone(),
            raft_config: Arc::new(raft_config),
            transport: Arc::new(GrpcTransport { rpc }),
            events,
            lease_ms: config.raft.election_min_ms / 2,
        }));
        let meta = Arc::new(MetaClient::new(peers.clone(), registry.clone()));
        let node = Arc::new_cyclic(|me: &Weak<ClusterNode>| {
            let handle = || Arc::new(NodeHandle::from_weak(me.clone(), config.node_id));
            let kv = Arc::new(KvClient::new(
                handle(),
                vec![handle() as Arc<dyn RangeService>],
                handle(),
                RetryPolicy {
                    max_route_attempts: 40,
                    ..RetryPolicy::default()
                },
            ));
            ClusterNode {
                addr: addr.clone(),
                store,
                peers: peers.clone(),
                meta,
                registry: registry.clone(),
                hints: RwLock::new(HashMap::new()),
                kv,
                gc_removed: AtomicU64::new(0),
                me: me.clone(),
                config,
            }
        });
        let handler: Arc<dyn Handler> = node.clone();
        peers.set_local(Arc::downgrade(&handler));
        for state in existing {
            registry.open(state).await.map_err(store_err)?;
        }
        tokio::spawn(async move {
            if let Err(e) = crate::rpc::serve(listener, handler, std::future::pending()).await {
                tracing::error!(error = %e, "internal RPC server stopped");
            }
        });
        tokio::spawn(crate::events::run(Arc::downgrade(&node), events_rx));
        node.join_cluster().await?;
        crate::background::spawn(&node);
        node.wait_ready(Duration::from_secs(60)).await?;
        Ok(node)
    }

    async fn join_cluster(&self) -> Result<(), StartError> {
        if self.config.join.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let req = Request::from(AdminRequest::Join {
            node_id: self.node_id(),
            addr: self.addr.clone(),
        });
        loop {
            for seed in &self.config.join {
                if *seed == self.addr.rpc {
                    continue;
                }
                match self
                    .peers
                    .rpc()
                    .call(0, seed, &req, Duration::from_secs(5))
                    .await
                {
                    Ok(Response::Cluster(view)) => {
                        self.add_nodes(view.nodes);
                        if let Some(l) = view.meta_leader {
                            self.meta.set_leader(l);
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
            if !self.registry.is_empty() {
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
