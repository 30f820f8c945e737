//! One-phase commit: prewrite checks and the commit record in one batch, for
//! transactions whose writes all land in one range.

use holo_txn_types::{
    KeyError, Mutation, MutationOp, SHORT_VALUE_MAX_LEN, Timestamp, Write, WriteType,
};

use crate::actions::prewrite::{NewerCheck, check_versions};
use crate::mvcc::reader::MvccReader;
use crate::mvcc::txn::MvccTxn;
use crate::{Result, StorageError};

/// Commits `mutation` directly at `commit_ts` after the same checks as a
/// prewrite. The caller must have taken `commit_ts` from the timestamp oracle
/// while holding latches on every key of the transaction, so no reader with a
/// later timestamp can have missed these writes.
pub fn one_pc(
    reader: &MvccReader<'_>,
    txn: &mut MvccTxn<'_>,
    mutation: &Mutation,
    start_ts: Timestamp,
    commit_ts: Timestamp,
) -> Result<()> {
    if commit_ts <= start_ts {
        return Err(StorageError::InvalidCommand(format!(
            "commit_ts {commit_ts} must be greater than start_ts {start_ts}"
        )));
    }
    let key = mutation.key.as_slice();
    if let Some(lock) = reader.load_lock(key)? {
        return Err(KeyError::Locked(lock.info(key)).into());
    }
    let insert = matches!(mutation.op, MutationOp::Insert(_));
    if check_versions(reader, key, start_ts, insert)? == NewerCheck::AlreadyCommitted {
        return Ok(());
    }
    let write_type = match mutation.op {
        MutationOp::Put(_) | MutationOp::Insert(_) => WriteType::Put,
        MutationOp::Delete => WriteType::Delete,
        MutationOp::Lock => WriteType::Lock,
    };
    let mut write = Write::new(write_type, start_ts);
    if let Some(value) = mutation.value() {
        if value.len() <= SHORT_VALUE_MAX_LEN {
            write.short_value = Some(value.to_vec());
        } else {
            txn.put_value(key, start_ts, value)?;
        }
    }
    txn.put_write(key, commit_ts, &write)
}
