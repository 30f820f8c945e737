//! What nodes report about the cluster and their replicas.

use std::collections::BTreeMap;

use holo_raft::NodeAddr;
use holo_storage::RangeDescriptor;
use serde::{Deserialize, Serialize};

/// The cluster as one node sees it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClusterView {
    /// Every registered node and its addresses.
    pub nodes: BTreeMap<u64, NodeAddr>,
    /// The meta range's leader, when known.
    pub meta_leader: Option<u64>,
}

/// One replica on a node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// The range (span, epoch, replicas).
    pub desc: RangeDescriptor,
    /// The range's Raft leader (its leaseholder), as this replica knows it.
    pub leader: Option<u64>,
    /// The replica's Raft term.
    pub term: u64,
    /// Last applied log index.
    pub applied_index: u64,
    /// Approximate bytes of the range's data on this node.
    pub approximate_bytes: u64,
    /// Whether the replica has its data yet (a new replica waits for a
    /// snapshot).
    pub initialized: bool,
}

/// A node's status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node.
    pub node_id: u64,
    /// Its addresses.
    pub addr: NodeAddr,
    /// The cluster as the node sees it.
    pub cluster: ClusterView,
    /// Its replicas, by range id.
    pub replicas: Vec<ReplicaStatus>,
    /// Its store's GC safe point (reads below it are refused).
    pub gc_safe_point: holo_txn_types::Timestamp,
    /// Versions its GC sweeps removed since it started.
    pub gc_versions_removed: u64,
}
