//! [`StorageError`]: failures of the storage layer.

use holo_txn_types::{DecodeError, KeyError};

use crate::RangeId;

/// Result alias for the storage crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// RocksDB reported an error (I/O, corruption, options).
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A stored record could not be decoded.
    #[error("decode: {0}")]
    Decode(#[from] DecodeError),
    /// A transactional rule was violated at one key (locked, conflict, ...).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A command addressed a key outside the range's span.
    #[error("key {key:?} is outside range {range_id}")]
    KeyOutOfRange {
        /// The offending key (raw).
        key: Vec<u8>,
        /// The addressed range.
        range_id: RangeId,
    },
    /// A command is malformed (caller bug or bad request).
    #[error("invalid command: {0}")]
    InvalidCommand(String),
    /// The engine could not be opened or configured.
    #[error("engine: {0}")]
    Engine(String),
}

impl StorageError {
    /// A stable code naming the variant (a key error's own code for
    /// [`StorageError::Key`]).
    pub fn code(&self) -> &'static str {
        match self {
            StorageError::Rocks(_) => "STORAGE_ROCKSDB",
            StorageError::Decode(_) => "STORAGE_DECODE",
            StorageError::Key(k) => k.code(),
            StorageError::KeyOutOfRange { .. } => "STORAGE_KEY_OUT_OF_RANGE",
            StorageError::InvalidCommand(_) => "STORAGE_INVALID_COMMAND",
            StorageError::Engine(_) => "STORAGE_ENGINE",
        }
    }
}
