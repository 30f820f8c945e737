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

/// A range's Raft handle.
pub type RangeRaft = openraft::Raft<TypeConfig>;

/// Runs blocking storage work (RocksDB writes and fsyncs) from async code
/// without stalling the runtime's other tasks: on a multi-threaded runtime
/// the worker hands its other tasks off while `f` runs.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
