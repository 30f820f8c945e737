//! Errors a transaction can meet at one key, and the status of a transaction.

use serde::{Deserialize, Serialize};

use crate::{LockType, Timestamp};

/// A record or key could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside the named field.
    #[error("truncated input while decoding {0}")]
    Truncated(&'static str),
    /// The named field holds an impossible value.
    #[error("corrupt {0}")]
    Corrupt(&'static str),
}

/// What a reader or writer learns about a lock it ran into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// The locked key.
    pub key: Vec<u8>,
    /// The primary key of the lock's transaction: its status decides the lock.
    pub primary: Vec<u8>,
    /// Start timestamp of the lock's transaction.
    pub start_ts: Timestamp,
    /// Time to live from `start_ts`'s physical time, in milliseconds.
    pub ttl_ms: u64,
    /// Kind of lock.
    pub lock_type: LockType,
    /// The smallest commit timestamp the transaction may still use.
    pub min_commit_ts: Timestamp,
    /// Further keys after `key` in the same range locked by the same
    /// transaction, found by the same scan: resolved together with `key`.
    #[serde(default, with = "crate::bytes::list")]
    pub more_keys: Vec<Vec<u8>>,
}

/// A committed version newer than the transaction's snapshot exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteConflict {
    /// The conflicting key.
    pub key: Vec<u8>,
    /// Start timestamp of the transaction that hit the conflict.
    pub start_ts: Timestamp,
    /// Start timestamp of the transaction that committed first.
    pub conflict_start_ts: Timestamp,
    /// Commit timestamp of the transaction that committed first.
    pub conflict_commit_ts: Timestamp,
}

/// Per-key failures of transactional commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum KeyError {
    /// Another transaction holds a lock on the key.
    #[error("key is locked by transaction {}", .0.start_ts)]
    Locked(LockInfo),
    /// A newer committed version exists (first committer wins).
    #[error(
        "write conflict: transaction {} committed at {} after our start {}",
        .0.conflict_start_ts, .0.conflict_commit_ts, .0.start_ts
    )]
    Conflict(WriteConflict),
    /// An insert found a live row under its key.
    #[error("key already exists")]
    AlreadyExists {
        /// The existing key.
        key: Vec<u8>,
    },
    /// The transaction was rolled back before this command arrived.
    #[error("transaction {start_ts} was already rolled back")]
    RolledBack {
        /// Start timestamp of the transaction.
        start_ts: Timestamp,
    },
    /// The commit timestamp is below the lock's `min_commit_ts`: a reader
    /// pushed the transaction; commit again with a newer timestamp.
    #[error("commit timestamp {commit_ts} is below the minimum {min_commit_ts}")]
    CommitTsExpired {
        /// The rejected commit timestamp.
        commit_ts: Timestamp,
        /// The smallest acceptable commit timestamp.
        min_commit_ts: Timestamp,
    },
    /// A commit or rollback found neither the lock nor any record of the
    /// transaction on the key.
    #[error("transaction {start_ts} not found on key")]
    TxnNotFound {
        /// Start timestamp of the transaction.
        start_ts: Timestamp,
    },
    /// A rollback met a transaction that already committed.
    #[error("transaction {start_ts} already committed at {commit_ts}")]
    Committed {
        /// Start timestamp of the transaction.
        start_ts: Timestamp,
        /// Its commit timestamp.
        commit_ts: Timestamp,
    },
    /// The read timestamp is below the garbage-collection safe point.
    #[error("read timestamp {read_ts} is below the GC safe point {safe_point}")]
    SnapshotTooOld {
        /// The rejected read timestamp.
        read_ts: Timestamp,
        /// The current safe point.
        safe_point: Timestamp,
    },
}

impl KeyError {
    /// A stable code naming the variant (logs, metrics and the RPC error
    /// carry it; it never changes once released).
    pub fn code(&self) -> &'static str {
        match self {
            KeyError::Locked(_) => "KEY_LOCKED",
            KeyError::Conflict(_) => "KEY_WRITE_CONFLICT",
            KeyError::AlreadyExists { .. } => "KEY_ALREADY_EXISTS",
            KeyError::RolledBack { .. } => "KEY_TXN_ROLLED_BACK",
            KeyError::CommitTsExpired { .. } => "KEY_COMMIT_TS_EXPIRED",
            KeyError::TxnNotFound { .. } => "KEY_TXN_NOT_FOUND",
            KeyError::Committed { .. } => "KEY_TXN_COMMITTED",
            KeyError::SnapshotTooOld { .. } => "KEY_SNAPSHOT_TOO_OLD",
        }
    }
}

/// The state of a transaction as decided by its primary key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnStatus {
    /// The primary lock is alive. `min_commit_ts` is its current value after
    /// any push.
    Locked {
        /// Time to live of the primary lock, in milliseconds.
        ttl_ms: u64,
        /// The smallest commit timestamp the transaction may still use.
        min_commit_ts: Timestamp,
    },
    /// The transaction committed.
    Committed {
        /// Its commit timestamp.
        commit_ts: Timestamp,
    },
    /// The transaction was rolled back (now or earlier).
    RolledBack,
}
