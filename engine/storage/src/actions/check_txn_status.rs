//! Check a transaction's status through its primary key, rolling back an
//! expired transaction and pushing a live one past a reader.

use holo_txn_types::{KeyError, LockType, Timestamp, TxnStatus};

use crate::Result;
use crate::actions::rollback::rollback;
use crate::mvcc::reader::{MvccReader, TxnRecord};
use crate::mvcc::txn::MvccTxn;

/// Parameters of a status check.
#[derive(Debug, Clone)]
pub struct CheckTxnStatusParams<'p> {
    /// The transaction's primary key.
    pub primary: &'p [u8],
    /// The transaction's start timestamp.
    pub lock_ts: Timestamp,
    /// Read timestamp of the reader that met the lock; the live transaction
    /// is pushed to commit after it. `Timestamp::ZERO` pushes nothing.
    pub caller_start_ts: Timestamp,
    /// Current time from the timestamp oracle, for TTL expiry.
    pub current_ts: Timestamp,
    /// Write a rollback record when the primary holds no trace of the
    /// transaction (its prewrite never arrived or was lost).
    pub rollback_if_not_exist: bool,
}

/// Decides the transaction's status from its primary key.
pub fn check_txn_status(
    reader: &MvccReader<'_>,
    txn: &mut MvccTxn<'_>,
    p: &CheckTxnStatusParams<'_>,
) -> Result<TxnStatus> {
    match reader.load_lock(p.primary)? {
        Some(mut lock) if lock.start_ts == p.lock_ts => {
            if lock.start_ts.expired_at(lock.ttl_ms, p.current_ts) {
                rollback(reader, txn, p.primary, p.lock_ts, true)?;
                return Ok(TxnStatus::RolledBack);
            }
            if p.caller_start_ts > Timestamp::ZERO
                && p.caller_start_ts < Timestamp::MAX
                && lock.lock_type != LockType::Lock
                && lock.min_commit_ts <= p.caller_start_ts
            {
                lock.min_commit_ts = p.caller_start_ts.next();
                txn.put_lock(p.primary, &lock)?;
            }
            Ok(TxnStatus::Locked {
                ttl_ms: lock.ttl_ms,
                min_commit_ts: lock.min_commit_ts,
            })
        }
        _ => match reader.txn_record(p.primary, p.lock_ts)? {
            TxnRecord::Committed { commit_ts, .. } => Ok(TxnStatus::Committed { commit_ts }),
            TxnRecord::RolledBack { .. } => Ok(TxnStatus::RolledBack),
            TxnRecord::None if p.rollback_if_not_exist => {
                rollback(reader, txn, p.primary, p.lock_ts, true)?;
                Ok(TxnStatus::RolledBack)
            }
            TxnRecord::None => Err(KeyError::TxnNotFound {
                start_ts: p.lock_ts,
            }
            .into()),
        },
    }
}
