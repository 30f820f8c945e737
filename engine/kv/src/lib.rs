//! HoloStore's key-value layer: what a node serves for its ranges and how a
//! client reaches them.
//!
//! The client side only; the ranges are served by `holo-cluster`.
//!
//! - [`service::RangeService`]: the per-node API (get, scan, write) addressed
//!   by range id and epoch, in-process for the local node and over gRPC for
//!   peers.
//! - [`tso::TimestampOracle`]: strictly increasing timestamps.
//! - [`router::RangeCache`] and [`client::KvClient`]: route keys to ranges,
//!   refresh stale routes, resolve locks met on the way.
//! - [`txn::Transaction`]: snapshot reads with read-your-writes, buffered
//!   writes, one-phase commit on one range, Percolator two-phase commit across
//!   ranges.

pub mod active;
pub mod client;
pub mod error;
pub mod failpoint;
pub mod lock_resolver;
pub mod router;
pub mod service;
pub mod tso;
pub mod txn;

pub use client::KvClient;
pub use error::{KvError, Result};
/// For the SQL layer, which reaches storage only through this crate.
pub use holo_storage::blocking;
pub use tso::TimestampOracle;
pub use txn::{CommitInfo, Transaction, TxnOptions};
