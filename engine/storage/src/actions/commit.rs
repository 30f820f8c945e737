//! Commit: turn a transaction's lock on a key into a write record.

use holo_txn_types::{KeyError, Lock, LockType, Timestamp, Write, WriteType};

use crate::Result;
use crate::mvcc::reader::{MvccReader, TxnRecord};
use crate::mvcc::txn::MvccTxn;

/// The write record that committing `lock` produces.
pub(crate) fn write_for_lock(lock: &Lock) -> Write {
    let write_type = match lock.lock_type {
        LockType::Put => WriteType::Put,
        LockType::Delete => WriteType::Delete,
        LockType::Lock => WriteType::Lock,
    };
    Write {
        write_type,
        start_ts: lock.start_ts,
        short_value: lock.short_value.clone(),
        protected: false,
    }
}

/// Commits `key` for the transaction started at `start_ts` at `commit_ts`.
///
/// With `check_min_commit_ts` the commit fails with `CommitTsExpired` when a
/// reader pushed the lock's `min_commit_ts` past `commit_ts`; lock resolution
/// of secondaries (whose primary already committed) skips the check.
/// Committing an already committed key is a no-op.
pub fn commit(
    reader: &MvccReader<'_>,
    txn: &mut MvccTxn<'_>,
    key: &[u8],
    start_ts: Timestamp,
    commit_ts: Timestamp,
    check_min_commit_ts: bool,
) -> Result<()> {
    match reader.load_lock(key)? {
        Some(lock) if lock.start_ts == start_ts => {
            if check_min_commit_ts && commit_ts < lock.min_commit_ts {
                return Err(KeyError::CommitTsExpired {
                    commit_ts,
                    min_commit_ts: lock.min_commit_ts,
                }
                .into());
            }
            txn.put_write(key, commit_ts, &write_for_lock(&lock))?;
            txn.unlock_key(key)
        }
        _ => match reader.txn_record(key, start_ts)? {
            TxnRecord::Committed { .. } => Ok(()),
            TxnRecord::RolledBack { .. } => Err(KeyError::RolledBack { start_ts }.into()),
            TxnRecord::None => Err(KeyError::TxnNotFound { start_ts }.into()),
        },
    }
}
