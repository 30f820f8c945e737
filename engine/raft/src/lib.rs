//! HoloStore ranges as Raft groups (openraft 0.9, storage v2).
//!
//! - [`types`]: the type configuration: commands ([`RaftCommand`]), responses,
//!   node addresses.
//! - [`log_store`]: a range's Raft log, vote and purge state in the engine's
//!   `raft` column family, keyed by range id (many groups, one RocksDB).
//! - [`state_machine`]: applies commands to the MVCC store; a command's writes
//!   and the applied index go in one batch. Splits create the right-hand
//!   group's initial state in the same batch.
//! - [`network`]: openraft's network over a [`network::RaftTransport`] that
//!   carries serialized messages (gRPC in `holo-cluster`).

pub mod codec;
pub mod log_store;
pub mod network;
pub mod state_machine;
pub mod types;

pub use types::{NodeAddr, RaftCommand, RaftResponse, TypeConfig};

/// Bytes of log entries one AppendEntries carries at most (it always
/// carries at least one entry). openraft gives every AppendEntries the
/// heartbeat interval as its time limit, so a message must be small enough
/// to be encoded, sent and synced by a follower well within it; a larger
/// backlog goes out as several messages.
pub const MAX_APPEND_BYTES: usize = 512 << 10;

/// Bytes of keys and values one replicated write may carry (a larger one is
/// refused with 54000 before it is proposed). Transaction clients cut their
/// writes into commands of 256 KiB (`holo_kv::TxnOptions`); only a single
/// row bigger than this meets the limit.
pub const MAX_COMMAND_BYTES: usize = 4 << 20;

/// A range's Raft handle.
pub type RangeRaft = openraft::Raft<TypeConfig>;
