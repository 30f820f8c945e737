//! [`ClusterNode`]: one node of the cluster, made of parts that each own
//! one kind of state: [`Peers`] (who is in the cluster and alive),
//! [`MetaClient`] (the meta range: registry, descriptors, timestamps),
//! [`ReplicaRegistry`] (the range replicas held here), the MVCC store and
//! the KV client that routes through them.
//!
//! What the node does with them lives beside it: start-up in `startup`,
//! request dispatch in `dispatch`, Raft events in `events`, and `split`,
//! `merge`, `lease`, `rebalance`, `gc` and `background`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use holo_kv::{KvClient, KvError};
use holo_raft::NodeAddr;
use holo_storage::{MvccStore, RangeId};
use holo_txn_types::Timestamp;
use parking_lot::RwLock;

use crate::config::ClusterConfig;
use crate::meta_client::MetaClient;
use crate::peers::Peers;
use crate::registry::ReplicaRegistry;
use crate::replica::RangeReplica;
use crate::status::{ClusterView, NodeStatus};

/// Leader hints for ranges this node does not lead, learned from answers.
pub(crate) type LeaderHints = RwLock<HashMap<RangeId, u64>>;

/// One node of a cluster.
pub struct ClusterNode {
    pub(crate) config: ClusterConfig,
    pub(crate) addr: NodeAddr,
    pub(crate) store: Arc<MvccStore>,
    pub(crate) peers: Arc<Peers>,
    pub(crate) meta: Arc<MetaClient>,
    pub(crate) registry: Arc<ReplicaRegistry>,
    pub(crate) hints: LeaderHints,
    pub(crate) kv: Arc<KvClient>,
    pub(crate) gc_removed: AtomicU64,
    pub(crate) me: Weak<ClusterNode>,
}

impl std::fmt::Debug for ClusterNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterNode")
            .field("node_id", &self.config.node_id)
            .finish()
    }
}

impl ClusterNode {
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

    /// The cluster's nodes as this node knows them.
    pub fn peers(&self) -> &Arc<Peers> {
        &self.peers
    }

    /// The meta range's client.
    pub fn meta(&self) -> &Arc<MetaClient> {
        &self.meta
    }

    /// The replicas this node holds.
    pub fn registry(&self) -> &Arc<ReplicaRegistry> {
        &self.registry
    }

    /// The KV client routing through the cluster.
    pub fn kv(&self) -> Arc<KvClient> {
        self.kv.clone()
    }

    /// Known nodes and their addresses.
    pub fn nodes(&self) -> BTreeMap<u64, NodeAddr> {
        self.peers.nodes()
    }

    /// Records nodes learned from a peer or the registry; the KV client
    /// learns how to reach the new ones.
    pub(crate) fn add_nodes(&self, found: BTreeMap<u64, NodeAddr>) {
        for (id, addr) in self.peers.learn(found) {
            if id != self.node_id() {
                tracing::info!(node = id, rpc = %addr.rpc, "learned node");
                self.kv.add_node(Arc::new(crate::remote::RemoteNode::new(
                    id,
                    addr.rpc,
                    self.peers.rpc().clone(),
                )));
            }
        }
    }

    /// Records a node's addresses in the registry and learns them.
    pub(crate) async fn register_node(&self, node_id: u64, addr: NodeAddr) -> Result<(), KvError> {
        self.meta.register_node(node_id, &addr).await?;
        self.add_nodes(BTreeMap::from([(node_id, addr)]));
        Ok(())
    }

    /// The local replica of `range`, if any.
    pub fn replica(&self, range: RangeId) -> Option<Arc<RangeReplica>> {
        self.registry.get(range)
    }

    /// Every local replica.
    pub fn replicas(&self) -> Vec<Arc<RangeReplica>> {
        self.registry.all()
    }

    /// A timestamp from the oracle.
    pub async fn timestamp(&self) -> Result<Timestamp, KvError> {
        self.meta.timestamp().await
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

    /// The nodes and the meta leader, as answered to a joining node.
    pub(crate) fn view(&self) -> ClusterView {
        ClusterView {
            nodes: self.nodes(),
            meta_leader: Some(self.meta.leader_hint()),
        }
    }
}
