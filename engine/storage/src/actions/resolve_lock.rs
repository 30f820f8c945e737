//! Resolve a secondary lock once its primary's fate is known.

use holo_txn_types::Timestamp;

use crate::Result;
use crate::actions::{commit::commit, rollback::rollback};
use crate::mvcc::reader::MvccReader;
use crate::mvcc::txn::MvccTxn;

/// Commits (`commit_ts = Some`) or rolls back (`None`) the lock of the
/// transaction started at `start_ts` on `key`. Keys without that lock are
/// left alone: they were resolved already.
pub fn resolve_lock(
    reader: &MvccReader<'_>,
    txn: &mut MvccTxn<'_>,
    key: &[u8],
    start_ts: Timestamp,
    commit_ts: Option<Timestamp>,
) -> Result<()> {
    match reader.load_lock(key)? {
        Some(lock) if lock.start_ts == start_ts => match commit_ts {
            Some(commit_ts) => commit(reader, txn, key, start_ts, commit_ts, false),
            None => rollback(reader, txn, key, start_ts, false),
        },
        _ => Ok(()),
    }
}
