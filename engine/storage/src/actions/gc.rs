//! Garbage collection of versions no reader can see any more.

use holo_txn_types::{Timestamp, WriteType};

use crate::Result;
use crate::mvcc::reader::MvccReader;
use crate::mvcc::txn::MvccTxn;

/// Removes the versions of `key` that no read at or above `safe_point` can
/// see: everything older than the newest data change at or below the safe
/// point, that change itself when it is a deletion, and lock/rollback records
/// below it. Returns the number of records removed.
pub fn gc(
    reader: &MvccReader<'_>,
    txn: &mut MvccTxn<'_>,
    key: &[u8],
    safe_point: Timestamp,
) -> Result<usize> {
    let mut removed = 0;
    let mut found_data = false;
    for (commit_ts, write) in reader.writes_since(key, Timestamp::ZERO)? {
        if commit_ts > safe_point {
            continue;
        }
        let keep = !found_data && write.write_type == WriteType::Put;
        if !found_data && write.write_type.is_data_change() {
            found_data = true;
        }
        if keep {
            continue;
        }
        txn.delete_write(key, commit_ts)?;
        if write.write_type == WriteType::Put && write.short_value.is_none() {
            txn.delete_value(key, write.start_ts)?;
        }
        removed += 1;
    }
    Ok(removed)
}
