//! Prewrite: lock a key and stage its value, or report why not.

use holo_txn_types::{
    KeyError, Lock, Mutation, MutationOp, SHORT_VALUE_MAX_LEN, Timestamp, WriteConflict, WriteType,
};

use crate::Result;
use crate::mvcc::reader::MvccReader;
use crate::mvcc::txn::MvccTxn;

/// Transaction-wide parameters of a prewrite.
#[derive(Debug, Clone)]
pub struct PrewriteParams<'p> {
    /// The transaction's primary key.
    pub primary: &'p [u8],
    /// The transaction's start timestamp.
    pub start_ts: Timestamp,
    /// Lock time to live in milliseconds.
    pub lock_ttl_ms: u64,
    /// Number of keys in the transaction.
    pub txn_size: u64,
}

/// What the newer-version check found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NewerCheck {
    /// Nothing newer than the snapshot: go ahead.
    Clear,
    /// This transaction already committed the key (a retried request).
    AlreadyCommitted,
}

/// Checks what a write of `key` by the transaction started at `start_ts`
/// must check, in one pass over the key's versions: a version committed
/// after `start_ts` is a write conflict, this transaction's own rollback
/// record means it was rolled back, its own commit record means a retried
/// request (already committed); with `must_not_exist`, a live value is
/// `AlreadyExists`.
pub(crate) fn check_versions(
    reader: &MvccReader<'_>,
    key: &[u8],
    start_ts: Timestamp,
    must_not_exist: bool,
) -> Result<NewerCheck> {
    let check = reader.write_check(key, start_ts)?;
    for (commit_ts, write) in &check.since_start {
        if write.start_ts == start_ts {
            if write.write_type == WriteType::Rollback {
                return Err(KeyError::RolledBack { start_ts }.into());
            }
            return Ok(NewerCheck::AlreadyCommitted);
        }
        if write.write_type == WriteType::Rollback {
            continue;
        }
        return Err(KeyError::Conflict(WriteConflict {
            key: key.to_vec(),
            start_ts,
            conflict_start_ts: write.start_ts,
            conflict_commit_ts: *commit_ts,
        })
        .into());
    }
    if must_not_exist && check.latest_before == Some(WriteType::Put) {
        return Err(KeyError::AlreadyExists { key: key.to_vec() }.into());
    }
    Ok(NewerCheck::Clear)
}

/// Prewrites one mutation: checks for a foreign lock, a newer committed
/// version and (for inserts) an existing row, then writes the lock and value.
/// A repeated prewrite of the same transaction is a no-op.
pub fn prewrite(
    reader: &MvccReader<'_>,
    txn: &mut MvccTxn<'_>,
    params: &PrewriteParams<'_>,
    mutation: &Mutation,
) -> Result<()> {
    let key = mutation.key.as_slice();
    if let Some(lock) = reader.load_lock(key)? {
        if lock.start_ts == params.start_ts {
            return Ok(());
        }
        return Err(KeyError::Locked(lock.info(key)).into());
    }
    let insert = matches!(mutation.op, MutationOp::Insert(_));
    if check_versions(reader, key, params.start_ts, insert)? == NewerCheck::AlreadyCommitted {
        return Ok(());
    }
    let mut lock = Lock {
        lock_type: mutation.lock_type(),
        primary: params.primary.to_vec(),
        start_ts: params.start_ts,
        ttl_ms: params.lock_ttl_ms,
        short_value: None,
        min_commit_ts: params.start_ts.next(),
        txn_size: params.txn_size,
    };
    if let Some(value) = mutation.value() {
        if value.len() <= SHORT_VALUE_MAX_LEN {
            lock.short_value = Some(value.to_vec());
        } else {
            txn.put_value(key, params.start_ts, value)?;
        }
    }
    txn.put_lock(key, &lock)
}
