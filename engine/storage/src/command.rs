//! [`WriteCommand`]: the replicated write commands of a range and their
//! evaluation into one atomic batch.

use holo_txn_types::{Mutation, Timestamp, TxnStatus};
use serde::{Deserialize, Serialize};

use crate::actions::check_txn_status::{CheckTxnStatusParams, check_txn_status};
use crate::actions::commit::commit;
use crate::actions::gc::gc;
use crate::actions::one_pc::one_pc;
use crate::actions::prewrite::{PrewriteParams, prewrite};
use crate::actions::resolve_lock::resolve_lock;
use crate::actions::rollback::rollback;
use crate::mvcc::reader::MvccReader;
use crate::mvcc::txn::MvccTxn;
use crate::{RangeDescriptor, Result, StorageError};

/// A write addressed to one range. Every input the evaluation needs (times
/// included) travels inside the command, so evaluating it on any replica gives
/// the same batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteCommand {
    /// Lock and stage `mutations` for a two-phase commit.
    Prewrite {
        /// The changes, each in this range.
        mutations: Vec<Mutation>,
        /// The transaction's primary key (may live in another range).
        #[serde(with = "serde_bytes")]
        primary: Vec<u8>,
        /// The transaction's start timestamp.
        start_ts: Timestamp,
        /// Lock time to live in milliseconds.
        lock_ttl_ms: u64,
        /// Number of keys in the whole transaction.
        txn_size: u64,
    },
    /// Commit prewritten `keys` at `commit_ts`.
    Commit {
        /// Keys to commit.
        #[serde(with = "holo_txn_types::bytes::list")]
        keys: Vec<Vec<u8>>,
        /// The transaction's start timestamp.
        start_ts: Timestamp,
        /// The commit timestamp.
        commit_ts: Timestamp,
    },
    /// Roll back `keys` of a transaction.
    Rollback {
        /// Keys to roll back.
        #[serde(with = "holo_txn_types::bytes::list")]
        keys: Vec<Vec<u8>>,
        /// The transaction's start timestamp.
        start_ts: Timestamp,
    },
    /// Prewrite and commit in one step (all writes in this range).
    OnePc {
        /// The changes.
        mutations: Vec<Mutation>,
        /// The transaction's start timestamp.
        start_ts: Timestamp,
        /// The commit timestamp, taken while the keys were latched.
        commit_ts: Timestamp,
    },
    /// Decide a transaction through its primary key.
    CheckTxnStatus {
        /// The primary key (in this range).
        #[serde(with = "serde_bytes")]
        primary: Vec<u8>,
        /// The transaction's start timestamp.
        lock_ts: Timestamp,
        /// Reader timestamp to push the transaction past (zero: no push).
        caller_start_ts: Timestamp,
        /// Current oracle time for TTL expiry.
        current_ts: Timestamp,
        /// Roll back a transaction the primary knows nothing about.
        rollback_if_not_exist: bool,
    },
    /// Commit (`commit_ts = Some`) or roll back the locks of one transaction
    /// on `keys`.
    ResolveLocks {
        /// Keys holding the transaction's locks.
        #[serde(with = "holo_txn_types::bytes::list")]
        keys: Vec<Vec<u8>>,
        /// The transaction's start timestamp.
        start_ts: Timestamp,
        /// Commit timestamp of the primary, or `None` to roll back.
        commit_ts: Option<Timestamp>,
    },
    /// Physically remove every version and lock in `[start, end)`. Only for
    /// spans no transaction will read again (the data of a dropped table).
    ClearRange {
        /// Inclusive start (raw key).
        #[serde(with = "serde_bytes")]
        start: Vec<u8>,
        /// Exclusive end (raw key, non-empty).
        #[serde(with = "serde_bytes")]
        end: Vec<u8>,
    },
    /// Garbage-collect versions below `safe_point` on `keys`.
    Gc {
        /// Keys to collect.
        #[serde(with = "holo_txn_types::bytes::list")]
        keys: Vec<Vec<u8>>,
        /// The safe point.
        safe_point: Timestamp,
    },
}

impl WriteCommand {
    /// Bytes of keys and values the command carries (its encoded size,
    /// give or take a few bytes per key).
    pub fn payload_bytes(&self) -> usize {
        let keys = |keys: &[Vec<u8>]| keys.iter().map(|k| k.len() + 2).sum::<usize>();
        let mutations = |m: &[Mutation]| m.iter().map(|m| m.size() + 4).sum::<usize>();
        match self {
            WriteCommand::Prewrite {
                mutations: m,
                primary,
                ..
            } => mutations(m) + primary.len(),
            WriteCommand::OnePc { mutations: m, .. } => mutations(m),
            WriteCommand::Commit { keys: k, .. }
            | WriteCommand::Rollback { keys: k, .. }
            | WriteCommand::ResolveLocks { keys: k, .. }
            | WriteCommand::Gc { keys: k, .. } => keys(k),
            WriteCommand::CheckTxnStatus { primary, .. } => primary.len(),
            WriteCommand::ClearRange { start, end } => start.len() + end.len(),
        }
    }
}

/// The outcome of a successful command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteResult {
    /// The command applied.
    Done,
    /// The status of the checked transaction.
    TxnStatus(TxnStatus),
    /// Number of versions garbage-collected.
    GcRemoved(usize),
}

impl WriteCommand {
    /// Every key the command touches; the caller latches exactly these.
    pub fn keys(&self) -> Vec<&[u8]> {
        match self {
            WriteCommand::Prewrite { mutations, .. } | WriteCommand::OnePc { mutations, .. } => {
                mutations.iter().map(|m| m.key.as_slice()).collect()
            }
            WriteCommand::Commit { keys, .. }
            | WriteCommand::Rollback { keys, .. }
            | WriteCommand::ResolveLocks { keys, .. }
            | WriteCommand::Gc { keys, .. } => keys.iter().map(Vec::as_slice).collect(),
            WriteCommand::CheckTxnStatus { primary, .. } => vec![primary.as_slice()],
            WriteCommand::ClearRange { .. } => Vec::new(),
        }
    }

    /// The start timestamp the command acts for, when it has one.
    pub fn start_ts(&self) -> Option<Timestamp> {
        match self {
            WriteCommand::Prewrite { start_ts, .. }
            | WriteCommand::Commit { start_ts, .. }
            | WriteCommand::Rollback { start_ts, .. }
            | WriteCommand::OnePc { start_ts, .. }
            | WriteCommand::ResolveLocks { start_ts, .. } => Some(*start_ts),
            WriteCommand::CheckTxnStatus { lock_ts, .. } => Some(*lock_ts),
            WriteCommand::Gc { .. } | WriteCommand::ClearRange { .. } => None,
        }
    }
}

/// Evaluates `cmd` against `reader`, recording its writes in `txn`.
///
/// Fails on the first key error; the caller then discards `txn`, so a
/// failed command writes nothing.
pub fn evaluate(
    reader: &MvccReader<'_>,
    txn: &mut MvccTxn<'_>,
    range: &RangeDescriptor,
    cmd: &WriteCommand,
) -> Result<WriteResult> {
    for key in cmd.keys() {
        if !range.contains(key) {
            return Err(StorageError::KeyOutOfRange {
                key: key.to_vec(),
                range_id: range.id,
            });
        }
    }
    match cmd {
        WriteCommand::Prewrite {
            mutations,
            primary,
            start_ts,
            lock_ttl_ms,
            txn_size,
        } => {
            let params = PrewriteParams {
                primary,
                start_ts: *start_ts,
                lock_ttl_ms: *lock_ttl_ms,
                txn_size: *txn_size,
            };
            for m in mutations {
                prewrite(reader, txn, &params, m)?;
            }
            Ok(WriteResult::Done)
        }
        WriteCommand::Commit {
            keys,
            start_ts,
            commit_ts,
        } => {
            if commit_ts <= start_ts {
                return Err(StorageError::InvalidCommand(format!(
                    "commit_ts {commit_ts} must be greater than start_ts {start_ts}"
                )));
            }
            for k in keys {
                commit(reader, txn, k, *start_ts, *commit_ts, true)?;
            }
            Ok(WriteResult::Done)
        }
        WriteCommand::Rollback { keys, start_ts } => {
            for k in keys {
                rollback(reader, txn, k, *start_ts, false)?;
            }
            Ok(WriteResult::Done)
        }
        WriteCommand::OnePc {
            mutations,
            start_ts,
            commit_ts,
        } => {
            for m in mutations {
                one_pc(reader, txn, m, *start_ts, *commit_ts)?;
            }
            Ok(WriteResult::Done)
        }
        WriteCommand::CheckTxnStatus {
            primary,
            lock_ts,
            caller_start_ts,
            current_ts,
            rollback_if_not_exist,
        } => {
            let params = CheckTxnStatusParams {
                primary,
                lock_ts: *lock_ts,
                caller_start_ts: *caller_start_ts,
                current_ts: *current_ts,
                rollback_if_not_exist: *rollback_if_not_exist,
            };
            Ok(WriteResult::TxnStatus(check_txn_status(
                reader, txn, &params,
            )?))
        }
        WriteCommand::ResolveLocks {
            keys,
            start_ts,
            commit_ts,
        } => {
            for k in keys {
                resolve_lock(reader, txn, k, *start_ts, *commit_ts)?;
            }
            Ok(WriteResult::Done)
        }
        WriteCommand::ClearRange { start, end } => {
            let inside = range.contains(start)
                && !end.is_empty()
                && (range.end_key.is_empty() || end.as_slice() <= range.end_key.as_slice());
            if !inside || start >= end {
                return Err(StorageError::InvalidCommand(format!(
                    "clear range [{start:?}, {end:?}) must be non-empty and inside range {}",
                    range.id
                )));
            }
            txn.delete_range(start, end)?;
            Ok(WriteResult::Done)
        }
        WriteCommand::Gc { keys, safe_point } => {
            let mut removed = 0;
            for k in keys {
                removed += gc(reader, txn, k, *safe_point)?;
            }
            Ok(WriteResult::GcRemoved(removed))
        }
    }
}
