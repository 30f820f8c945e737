//! [`RangeService`]: what a node serves for the ranges it holds, and
//! [`RangeDirectory`]: where a key's range lives.

use async_trait::async_trait;
use holo_storage::{
    RangeDescriptor, RangeEpoch, RangeId, ReadOptions, ScanResult, WriteCommand, WriteResult,
};
use holo_txn_types::{Mutation, Timestamp};
use serde::{Deserialize, Serialize};

use crate::Result;

/// Addresses a request to one range at the epoch the sender believes
/// current.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeHeader {
    /// The target range.
    pub range_id: RangeId,
    /// The sender's idea of the range's epoch.
    pub epoch: RangeEpoch,
}

impl RangeHeader {
    /// The header for `desc`.
    pub fn for_range(desc: &RangeDescriptor) -> RangeHeader {
        RangeHeader {
            range_id: desc.id,
            epoch: desc.epoch,
        }
    }
}

/// A write sent to a range's leaseholder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvWrite {
    /// A fully specified storage command.
    Command(WriteCommand),
    /// A one-phase commit: the leaseholder takes the commit timestamp from the
    /// oracle while it holds the keys' latches.
    OnePc {
        /// The changes, all in the range.
        mutations: Vec<Mutation>,
        /// The transaction's start timestamp.
        start_ts: Timestamp,
    },
}

/// The answer to a [`KvWrite`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteResponse {
    /// What the command produced.
    pub result: WriteResult,
    /// The commit timestamp a one-phase commit used.
    pub commit_ts: Option<Timestamp>,
}

/// The per-node API: reads and writes addressed to one of the node's ranges.
/// Stale addressing is answered with a stale-route error, never served.
#[async_trait]
pub trait RangeService: Send + Sync + 'static {
    /// The node's id.
    fn node_id(&self) -> u64;

    /// Reads one key.
    async fn get(
        &self,
        header: RangeHeader,
        key: Vec<u8>,
        read: ReadOptions,
    ) -> Result<Option<Vec<u8>>>;

    /// Scans `[start, end)` inside the range, at most `limit` pairs.
    async fn scan(
        &self,
        header: RangeHeader,
        start: Vec<u8>,
        end: Vec<u8>,
        read: ReadOptions,
        limit: usize,
    ) -> Result<ScanResult>;

    /// Applies a write.
    async fn write(&self, header: RangeHeader, write: KvWrite) -> Result<WriteResponse>;
}

/// A range's descriptor and the node serving it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeLocation {
    /// The range.
    pub desc: RangeDescriptor,
    /// The node holding its lease.
    pub leaseholder: u64,
}

/// Finds the range that holds a key.
#[async_trait]
pub trait RangeDirectory: Send + Sync + 'static {
    /// The range containing `key` and its leaseholder.
    async fn lookup(&self, key: &[u8]) -> Result<RangeLocation>;

    /// Every range overlapping `[start, end)` (empty `end` = unbounded), in
    /// key order.
    async fn ranges(&self, start: &[u8], end: &[u8]) -> Result<Vec<RangeLocation>>;

    /// Records that `range_id` is now believed to be led by `leaseholder`
    /// (learned from a stale-route answer).
    fn observe(&self, _range_id: RangeId, _leaseholder: u64) {}
}

/// One range as shown by `SHOW RANGES` and `holoctl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeInfo {
    /// Span, epoch and replicas.
    pub desc: RangeDescriptor,
    /// The node holding the lease (Raft leader), when known.
    pub leaseholder: Option<u64>,
    /// Approximate bytes of data at the leaseholder.
    pub approximate_bytes: u64,
}

/// Range administration the SQL layer offers (`ALTER TABLE ... SPLIT AT`,
/// `SHOW RANGES`); absent on a single unreplicated node.
#[async_trait]
pub trait ClusterAdmin: Send + Sync + std::fmt::Debug + 'static {
    /// Splits the range holding `key` so that a range starts at `key`.
    async fn split_at(&self, key: Vec<u8>) -> Result<()>;

    /// Removes the range boundary at `key` by merging the ranges on both
    /// sides of it; fails when no range starts at `key`.
    async fn unsplit_at(&self, key: Vec<u8>) -> Result<()>;

    /// The ranges overlapping `[start, end)` (empty `end` = unbounded).
    async fn range_info(&self, start: &[u8], end: &[u8]) -> Result<Vec<RangeInfo>>;
}
