//! The openraft type configuration of HoloStore ranges.

use std::io::Cursor;

use holo_storage::{RangeDescriptor, RangeId, WriteCommand, WriteResult};
use holo_txn_types::KeyError;
use serde::{Deserialize, Serialize};

/// Where a node can be reached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddr {
    /// Internal RPC address (`host:port`).
    pub rpc: String,
    /// PostgreSQL endpoint address.
    pub pg: String,
}

/// A replicated command of a range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RaftCommand {
    /// An MVCC command, evaluated against the state at apply time (every
    /// input, times included, is inside it: deterministic on all replicas).
    Write(WriteCommand),
    /// Split the range at `split_key`; keys from it on move to a new range
    /// `new_range_id` on the same replicas.
    Split {
        /// First key of the right-hand range.
        split_key: Vec<u8>,
        /// Id of the right-hand range.
        new_range_id: RangeId,
    },
    /// Persist the timestamp oracle's high-water mark (meta range only).
    TsoHighWater {
        /// Milliseconds since the epoch no issued timestamp may exceed.
        physical_ms: u64,
    },
    /// First step of a merge, in the right-hand range: from this entry on
    /// the range refuses every read and write (they retry and find the
    /// merged range) until the merge completes or is aborted.
    Freeze {
        /// Identifies the merge attempt.
        nonce: u64,
    },
    /// Lifts a [`RaftCommand::Freeze`] whose merge was aborted.
    Unfreeze {
        /// The merge attempt.
        nonce: u64,
    },
    /// Second step, in the left-hand range: absorb `right` (frozen, and
    /// applied up to its freeze on every replica). The commit point of the
    /// merge.
    Merge {
        /// The right-hand range's descriptor as frozen.
        right: RangeDescriptor,
        /// The merge attempt.
        nonce: u64,
        /// The left range's generation the merge was planned against (a
        /// split or another merge in between voids it).
        left_version: u64,
    },
    /// Fences a merge attempt in the left-hand range, so a late
    /// [`RaftCommand::Merge`] of it cannot apply; answers whether the merge
    /// had already applied.
    MergeAbort {
        /// The merge attempt.
        nonce: u64,
        /// First key of the right-hand range.
        right_start: Vec<u8>,
    },
    /// MVCC commands of different requests on disjoint keys, replicated as
    /// one entry (one log append and one sync for all of them); each has
    /// its own result (see `MvccStore::evaluate_group`).
    Writes(Vec<WriteCommand>),
}

impl std::fmt::Display for RaftCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RaftCommand::Write(cmd) => write!(f, "write({} keys)", cmd.keys().len()),
            RaftCommand::Split { new_range_id, .. } => write!(f, "split(->{new_range_id})"),
            RaftCommand::TsoHighWater { physical_ms } => write!(f, "tso_hwm({physical_ms})"),
            RaftCommand::Freeze { nonce } => write!(f, "freeze({nonce})"),
            RaftCommand::Unfreeze { nonce } => write!(f, "unfreeze({nonce})"),
            RaftCommand::Merge { right, nonce, .. } => {
                write!(f, "merge(<-{}, {nonce})", right.id)
            }
            RaftCommand::MergeAbort { nonce, .. } => write!(f, "merge_abort({nonce})"),
            RaftCommand::Writes(cmds) => write!(f, "writes({} commands)", cmds.len()),
        }
    }
}

/// Why a replicated command did not apply (deterministic on every replica).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApplyError {
    /// A transactional rule failed at one key.
    Key(KeyError),
    /// A key lies outside the range (it split since the command was sent).
    KeyNotInRange,
    /// The command is malformed or does not apply to this range.
    Invalid(String),
    /// The range is frozen by a merge: the request must find the merged
    /// range.
    Frozen,
}

impl ApplyError {
    /// A stable code naming the variant.
    pub fn code(&self) -> &'static str {
        match self {
            ApplyError::Key(k) => k.code(),
            ApplyError::KeyNotInRange => "APPLY_KEY_NOT_IN_RANGE",
            ApplyError::Invalid(_) => "APPLY_INVALID",
            ApplyError::Frozen => "APPLY_FROZEN",
        }
    }
}

/// The result of applying one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RaftResponse {
    /// A blank or membership entry.
    None,
    /// An MVCC command's result.
    Write(Result<WriteResult, ApplyError>),
    /// A split's outcome: the left and right descriptors.
    Split(Result<(RangeDescriptor, RangeDescriptor), ApplyError>),
    /// The high-water mark now persisted.
    TsoHighWater(u64),
    /// A freeze or unfreeze: the range's descriptor.
    Freeze(Result<RangeDescriptor, ApplyError>),
    /// A merge: the left range's new descriptor.
    Merge(Result<RangeDescriptor, ApplyError>),
    /// A merge abort: `true` when the attempt is now fenced, `false` when
    /// the merge had already applied.
    MergeAbort(Result<bool, ApplyError>),
    /// The results of a [`RaftCommand::Writes`], in its order.
    Writes(Vec<Result<WriteResult, ApplyError>>),
}

openraft::declare_raft_types!(
    /// Type configuration of every range's Raft group.
    pub TypeConfig:
        D = RaftCommand,
        R = RaftResponse,
        NodeId = u64,
        Node = NodeAddr,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);
