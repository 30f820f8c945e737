//! Transaction data types shared by every HoloStore layer.
//!
//! This crate holds plain data only: timestamps, the memcomparable key
//! encoding used under MVCC, lock and write records with their binary
//! formats, mutations and the key-level errors a transaction can meet. It has
//! no dependency on RocksDB, the network or the SQL layer, so the storage
//! engine, the KV client and (later) the Raft state machine and the RPC layer
//! all speak the same types.

pub mod bytes;
pub mod codec;
pub mod error;
pub mod lock;
pub mod mutation;
pub mod timestamp;
pub mod write;

pub use error::{DecodeError, KeyError, LockInfo, TxnStatus, WriteConflict};
pub use lock::{Lock, LockType};
pub use mutation::{Mutation, MutationOp};
pub use timestamp::Timestamp;
pub use write::{Write, WriteRef, WriteType};

/// Values up to this many bytes are stored inline in lock and write records
/// instead of a separate data column family entry.
pub const SHORT_VALUE_MAX_LEN: usize = 255;
