//! HoloStore MVCC storage on RocksDB.
//!
//! Every operation is addressed to a range ([`RangeDescriptor`]: id, key span,
//! epoch) and rejected when a key falls outside the span, so the same code runs
//! unchanged as the state machine of a range's Raft group. Writes are
//! [`WriteCommand`]s that are evaluated against the current state and turned
//! into one atomic RocksDB write batch; evaluation is deterministic (it carries
//! every timestamp it needs), which is what a replicated state machine
//! requires. Reads go through [`MvccReader`] at a read timestamp.
//!
//! Concurrency control is the caller's job: a command must run while the
//! caller holds latches on the keys it touches (see `holo-kv`'s latch manager).
//!
//! Layout: `engine` (RocksDB and its column families), `keys` (how MVCC keys
//! are laid out), `mvcc` (reader and write-batch builder), `actions` (one file
//! per Percolator primitive), `command` (the command set and its dispatcher),
//! `store` (the range-addressed API).

pub mod actions;
pub mod blocking;
pub mod command;
pub mod engine;
pub mod error;
pub mod keys;
pub mod mvcc;
pub mod range;
pub mod store;

pub use blocking::{blocking, blocking_future};
pub use command::{WriteCommand, WriteResult};
pub use engine::{Engine, EngineOptions};
pub use error::{Result, StorageError};
pub use mvcc::reader::{MvccReader, ReadOptions, ScanResult};
pub use range::{RangeDescriptor, RangeEpoch, RangeId, ReplicaDescriptor};
pub use store::{MvccStore, SpanEntry};
