//! [`KvError`]: failures of the key-value layer.

use holo_storage::{RangeDescriptor, RangeId, StorageError};
use holo_txn_types::KeyError;

/// Result alias for the KV layer.
pub type Result<T, E = KvError> = std::result::Result<T, E>;

/// A KV-layer failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KvError {
    /// A transactional rule was violated at one key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The addressed range does not exist on the node (moved, merged, or
    /// never here): refresh the route.
    #[error("range {range_id} not found on node {node_id}")]
    RangeNotFound {
        /// The requested range.
        range_id: RangeId,
        /// The node that answered.
        node_id: u64,
    },
    /// The request's epoch is stale (the range split or merged): refresh.
    #[error("range {range_id} epoch changed")]
    EpochNotMatch {
        /// The requested range.
        range_id: RangeId,
        /// The current descriptor, when the node knows it.
        current: Option<Box<RangeDescriptor>>,
    },
    /// A key of the request lies outside the range: refresh the route.
    #[error("key outside range {range_id}")]
    KeyNotInRange {
        /// The requested range.
        range_id: RangeId,
    },
    /// The node is not the range's leaseholder.
    #[error("node is not the leaseholder of range {range_id}")]
    NotLeader {
        /// The requested range.
        range_id: RangeId,
        /// The leaseholder, if known.
        leader: Option<u64>,
    },
    /// A lock held by a live transaction did not go away in time.
    #[error("timed out waiting for the lock of transaction {start_ts} on a key")]
    LockWaitTimeout {
        /// Start timestamp of the transaction holding the lock.
        start_ts: holo_txn_types::Timestamp,
        /// The locked key.
        key: Vec<u8>,
    },
    /// Retries of a stale route ran out.
    #[error("could not route request after {attempts} attempts: {last}")]
    RoutingExhausted {
        /// How many attempts were made.
        attempts: usize,
        /// The last routing error.
        last: String,
    },
    /// The transaction exceeded a size limit.
    #[error("transaction too large: {0}")]
    TxnTooLarge(String),
    /// The transaction was already committed or rolled back.
    #[error("transaction is no longer active")]
    TxnNotActive,
    /// The storage engine failed (I/O, corruption).
    #[error("storage: {0}")]
    Storage(String),
    /// A node did not answer (down, partitioned, overloaded): try another
    /// replica.
    #[error("node {node_id} unreachable: {reason}")]
    NodeUnreachable {
        /// The node.
        node_id: u64,
        /// What failed.
        reason: String,
    },
    /// A write was proposed but not known to commit in time: it may still
    /// commit (or not) later.
    #[error("result is ambiguous: {0}")]
    AmbiguousCommit(String),
    /// The service is shutting down or unreachable.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// An operation gave up and undid itself (a range merge that could
    /// not complete); trying again later may succeed.
    #[error("aborted: {0}")]
    Aborted(String),
    /// An administrative request that cannot be carried out as asked (a
    /// split of the meta range, a merge of the last range).
    #[error("{0}")]
    InvalidRequest(String),
}

impl KvError {
    /// A stable code naming the variant (a key error's own code for
    /// [`KvError::Key`]); logs, metrics and the RPC error carry it.
    pub fn code(&self) -> &'static str {
        match self {
            KvError::Key(k) => k.code(),
            KvError::RangeNotFound { .. } => "KV_RANGE_NOT_FOUND",
            KvError::EpochNotMatch { .. } => "KV_EPOCH_NOT_MATCH",
            KvError::KeyNotInRange { .. } => "KV_KEY_NOT_IN_RANGE",
            KvError::NotLeader { .. } => "KV_NOT_LEADER",
            KvError::LockWaitTimeout { .. } => "KV_LOCK_WAIT_TIMEOUT",
            KvError::RoutingExhausted { .. } => "KV_ROUTING_EXHAUSTED",
            KvError::TxnTooLarge(_) => "KV_TXN_TOO_LARGE",
            KvError::TxnNotActive => "KV_TXN_NOT_ACTIVE",
            KvError::Storage(_) => "KV_STORAGE",
            KvError::NodeUnreachable { .. } => "KV_NODE_UNREACHABLE",
            KvError::AmbiguousCommit(_) => "KV_AMBIGUOUS_COMMIT",
            KvError::Unavailable(_) => "KV_UNAVAILABLE",
            KvError::Aborted(_) => "KV_ABORTED",
            KvError::InvalidRequest(_) => "KV_INVALID_REQUEST",
        }
    }

    /// Whether the error means the route is stale and a refresh may help.
    pub fn is_stale_route(&self) -> bool {
        matches!(
            self,
            KvError::RangeNotFound { .. }
                | KvError::EpochNotMatch { .. }
                | KvError::KeyNotInRange { .. }
                | KvError::NotLeader { .. }
                | KvError::NodeUnreachable { .. }
        )
    }
}

impl From<StorageError> for KvError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Key(k) => KvError::Key(k),
            StorageError::KeyOutOfRange { range_id, .. } => KvError::KeyNotInRange { range_id },
            other => KvError::Storage(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use holo_txn_types::Timestamp;

    /// Every variant once; its code is what clients and logs rely on.
    #[test]
    fn codes_are_stable_and_distinct() {
        let ts = Timestamp::ZERO;
        let all = [
            (
                KvError::Key(KeyError::AlreadyExists { key: vec![1] }),
                "KEY_ALREADY_EXISTS",
            ),
            (
                KvError::Key(KeyError::RolledBack { start_ts: ts }),
                "KEY_TXN_ROLLED_BACK",
            ),
            (
                KvError::Key(KeyError::TxnNotFound { start_ts: ts }),
                "KEY_TXN_NOT_FOUND",
            ),
            (
                KvError::Key(KeyError::Committed {
                    start_ts: ts,
                    commit_ts: ts,
                }),
                "KEY_TXN_COMMITTED",
            ),
            (
                KvError::Key(KeyError::CommitTsExpired {
                    commit_ts: ts,
                    min_commit_ts: ts,
                }),
                "KEY_COMMIT_TS_EXPIRED",
            ),
            (
                KvError::Key(KeyError::SnapshotTooOld {
                    read_ts: ts,
                    safe_point: ts,
                }),
                "KEY_SNAPSHOT_TOO_OLD",
            ),
            (
                KvError::RangeNotFound {
                    range_id: RangeId(3),
                    node_id: 1,
                },
                "KV_RANGE_NOT_FOUND",
            ),
            (
                KvError::EpochNotMatch {
                    range_id: RangeId(3),
                    current: None,
                },
                "KV_EPOCH_NOT_MATCH",
            ),
            (
                KvError::KeyNotInRange {
                    range_id: RangeId(3),
                },
                "KV_KEY_NOT_IN_RANGE",
            ),
            (
                KvError::NotLeader {
                    range_id: RangeId(3),
                    leader: None,
                },
                "KV_NOT_LEADER",
            ),
            (
                KvError::LockWaitTimeout {
                    start_ts: ts,
                    key: vec![],
                },
                "KV_LOCK_WAIT_TIMEOUT",
            ),
            (
                KvError::RoutingExhausted {
                    attempts: 1,
                    last: String::new(),
                },
                "KV_ROUTING_EXHAUSTED",
            ),
            (KvError::TxnTooLarge(String::new()), "KV_TXN_TOO_LARGE"),
            (KvError::TxnNotActive, "KV_TXN_NOT_ACTIVE"),
            (KvError::Storage(String::new()), "KV_STORAGE"),
            (
                KvError::NodeUnreachable {
                    node_id: 2,
                    reason: String::new(),
                },
                "KV_NODE_UNREACHABLE",
            ),
            (
                KvError::AmbiguousCommit(String::new()),
                "KV_AMBIGUOUS_COMMIT",
            ),
            (KvError::Unavailable(String::new()), "KV_UNAVAILABLE"),
            (KvError::Aborted(String::new()), "KV_ABORTED"),
            (KvError::InvalidRequest(String::new()), "KV_INVALID_REQUEST"),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for (e, code) in &all {
            assert_eq!(e.code(), *code, "{e:?}");
            assert!(seen.insert(*code), "code {code} used twice");
        }
    }
}
