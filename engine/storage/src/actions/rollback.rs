//! Rollback: remove a transaction's lock and fence the key against it.

use holo_txn_types::{KeyError, Timestamp, Write};

use crate::Result;
use crate::mvcc::reader::{MvccReader, TxnRecord};
use crate::mvcc::txn::MvccTxn;

/// Rolls back the transaction started at `start_ts` on `key`: deletes its lock
/// and staged value and writes a rollback record at `start_ts`, also when no
/// lock exists, so that a late prewrite of the same transaction fails.
/// Rolling back a committed key fails with `Committed`; rolling back twice is
/// a no-op. `protected` keeps the record through collapsing (primaries).
pub fn rollback(
    reader: &MvccReader<'_>,
    txn: &mut MvccTxn<'_>,
    key: &[u8],
    start_ts: Timestamp,
    protected: bool,
) -> Result<()> {
    match reader.load_lock(key)? {
        Some(lock) if lock.start_ts == start_ts => {
            if lock.short_value.is_none() && lock.lock_type == holo_txn_types::LockType::Put {
                txn.delete_value(key, start_ts)?;
            }
            txn.unlock_key(key)?;
        }
        _ => match reader.txn_record(key, start_ts)? {
            TxnRecord::Committed { commit_ts, .. } => {
                return Err(KeyError::Committed {
                    start_ts,
                    commit_ts,
                }
                .into());
            }
            TxnRecord::RolledBack { .. } => return Ok(()),
            TxnRecord::None => {}
        },
    }
    txn.put_write(key, start_ts, &Write::rollback(start_ts, protected))
}
