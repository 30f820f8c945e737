//! HoloStore's cluster runtime: every node runs one [`ClusterNode`].
//!
//! - [`node`]: the node: store, Raft groups per range replica, joining and
//!   bootstrapping, splits, replica addition, status.
//! - [`gc`]: the cluster-wide GC safe point and sweeps of old versions.
//! - [`merge`]: merging a range into its left-hand neighbour (freeze,
//!   merge trigger, fencing of failed attempts).
//! - [`rebalance`]: peer liveness, replica moves, replacing dead nodes'
//!   replicas, dropping replicas a node was removed from.
//! - [`replica`]: a range's leaseholder read and write paths over Raft.
//! - [`rpc`]: the internal gRPC service (tonic) carrying Raft and KV traffic.
//! - [`meta`]: the meta range's key layout (node registry, descriptors).
//! - [`directory`]: routing through the meta range; the node as its KV
//!   client's oracle and local range service.
//! - [`tso`]: the timestamp oracle at the meta range's leader.
//! - [`remote`]: peers' ranges over RPC.
//! - [`background`]: registry refresh, up-replication, meta reconcile,
//!   size-based splits.
//! - [`status`]: what nodes report.

pub mod admin;
pub mod background;
pub mod directory;
pub mod gc;
pub mod merge;
pub mod meta;
pub mod node;
pub mod rebalance;
pub mod remote;
pub mod replica;
pub mod rpc;
pub mod status;
pub mod tso;

pub use node::{ClusterConfig, ClusterNode, RaftTuning, StartError};
