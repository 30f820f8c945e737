//! [`KvError`]: failures of the key-value layer.

use holo_storage::{RangeDescriptor, RangeId, StorageError};
use holo_txn_types::KeyError;

/// Result alias for the KV layer.
pub type Result<T, E = KvError> = std::result::Result<T, E>;

/// A KV-layer failure.
#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
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
