//! HoloStore's cluster runtime: every node runs one [`ClusterNode`].
//!
//! State, each owned by one part:
//! - [`config`]: what the node starts with.
//! - [`peers`]: the cluster's nodes, how to reach them, liveness.
//! - [`meta_client`]: the meta range (node registry, descriptors, range
//!   ids, timestamp oracle) as this node reaches it.
//! - [`registry`]: the replicas this node holds.
//! - [`replica`]: one range's leaseholder read and write paths over Raft,
//!   under [`latch`]es, one-phase commits timestamped by its
//!   [`commit_clock`], concurrent writes grouped into one entry by its
//!   [`proposer`].
//! - [`node`]: the node, made of the parts above.
//!
//! What the node does:
//! - [`startup`]: opening or bootstrapping the store, joining, readiness.
//! - [`dispatch`]: one arm per request kind.
//! - [`events`]: splits, merges and membership changes reported by the
//!   state machines.
//! - [`split`], [`merge`], [`lease`], [`rebalance`], [`gc`]: range
//!   operations; [`background`]: the loops that run them.
//! - [`directory`]: the node as its KV client's directory, oracle and
//!   local range service.
//! - [`rpc`]: the internal gRPC service (tonic), its failures in wire form
//!   in [`rpc_error`]; [`remote`]: peers' ranges
//!   over it; [`tso`]: the oracle at the meta leader; [`meta`]: the meta
//!   range's key layout; [`status`]: what nodes report; [`admin`]: the SQL
//!   layer's cluster administration.

pub mod admin;
pub mod background;
pub mod commit_clock;
pub mod config;
pub mod directory;
pub mod dispatch;
pub mod events;
pub mod gc;
pub mod latch;
pub mod lease;
pub mod merge;
pub mod meta;
pub mod meta_client;
pub mod node;
pub mod peers;
pub mod proposer;
pub mod rebalance;
pub mod registry;
pub mod remote;
pub mod replica;
pub(crate) mod retry;
pub mod rpc;
pub mod rpc_error;
pub mod split;
pub mod startup;
pub mod status;
pub mod tso;

pub use config::{ClusterConfig, RaftTuning};
pub use node::ClusterNode;
pub use startup::StartError;
