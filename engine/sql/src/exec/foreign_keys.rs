//! Foreign keys at write time, the child side. A statement's row writes
//! note what the constraints need ([`FkWork`]): the parent keys its new
//! references lead to, and the referenced keys its deletes and updates take
//! away (for [`super::fk_actions`]). Once the statement's writes are
//! buffered, every parent key is read and locked in the transaction
//! ([`check_parents`]): a parent deleted concurrently then conflicts with
//! the lock, so a child and the deletion of its parent never both commit.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::compute::kernels::cmp::distinct;
use datafusion::common::ScalarValue;
use holo_kv::Transaction;

use crate::catalog::TableEntry;
use crate::catalog::foreign_keys::{FkLink, ParentRef, describe_values};
use crate::codec::column::conform;
use crate::error::{SqlError, SqlResult, sqlstate};

/// Parent keys read at once while checking references.
const CONCURRENT_READS: usize = 16;

/// References of one batch of child rows to check.
#[derive(Debug)]
struct ChildCheck {
    link: Arc<FkLink>,
    /// The referencing columns of the batch, in constraint order.
    values: Vec<ArrayRef>,
    /// Rows to check and where they lead (never [`ParentRef::Null`]).
    rows: Vec<(usize, ParentRef)>,
}

/// A referenced key that a parent row's delete or update took away.
#[derive(Debug, Clone)]
pub(crate) struct ParentChange {
    pub(crate) link: Arc<FkLink>,
    /// The referenced columns' old values (parent types).
    pub(crate) old: Vec<ScalarValue>,
    /// Their new values, for an update.
    pub(crate) new: Option<Vec<ScalarValue>>,
}

/// What a statement's writes leave for its foreign keys.
#[derive(Debug, Default)]
pub(crate) struct FkWork {
    checks: Vec<ChildCheck>,
    changes: Vec<ParentChange>,
}

/// The arrays at `positions` of full-width `rows`.
fn pick(rows: &[ArrayRef], positions: &[usize]) -> Vec<ArrayRef> {
    positions.iter().map(|&p| rows[p].clone()).collect()
}

/// Per row: whether any of the columns at `positions` differs between
/// `old` and `new` (NULL-aware).
fn changed(old: &[ArrayRef], new: &[ArrayRef], positions: &[usize]) -> SqlResult<Vec<bool>> {
    let rows = new.first().map_or(0, |a| a.len());
    let mut out = vec![false; rows];
    for &p in positions {
        let differs = distinct(&old[p], &new[p])
            .map_err(|e| SqlError::from(datafusion::error::DataFusionError::from(e)))?;
        for (i, d) in out.iter_mut().enumerate() {
            *d |= differs.value(i);
        }
    }
    Ok(out)
}

/// Row `i` of `arrays` as scalars; `None` when one is NULL.
fn tuple(arrays: &[ArrayRef], i: usize) -> SqlResult<Option<Vec<ScalarValue>>> {
    if arrays.iter().any(|a| a.is_null(i)) {
        return Ok(None);
    }
    arrays
        .iter()
        .map(|a| ScalarValue::try_from_array(a, i).map_err(SqlError::from))
        .collect::<SqlResult<Vec<_>>>()
        .map(Some)
}

/// Every table column conformed to its type.
fn conformed(entry: &TableEntry, rows: &[ArrayRef]) -> SqlResult<Vec<ArrayRef>> {
    rows.iter()
        .zip(&entry.desc.columns)
        .map(|(a, c)| conform(a, c.ty))
        .collect()
}

impl FkWork {
    /// Whether there is nothing to do.
    pub(crate) fn is_empty(&self) -> bool {
        self.checks.is_empty() && self.changes.is_empty()
    }

    fn check_references(
        &mut self,
        link: &Arc<FkLink>,
        rows: &[ArrayRef],
        which: &[bool],
    ) -> SqlResult<()> {
        let values = pick(rows, &link.child_columns);
        let refs = link.parent_refs(&values)?;
        let rows: Vec<(usize, ParentRef)> = refs
            .into_iter()
            .enumerate()
            .filter(|(i, r)| which[*i] && *r != ParentRef::Null)
            .collect();
        if !rows.is_empty() {
            self.checks.push(ChildCheck {
                link: link.clone(),
                values,
                rows,
            });
        }
        Ok(())
    }

    fn take_away(
        &mut self,
        link: &Arc<FkLink>,
        old: &[ArrayRef],
        new: Option<&[ArrayRef]>,
        which: &[bool],
    ) -> SqlResult<()> {
        let old = pick(old, &link.parent_columns);
        let new = new.map(|n| pick(n, &link.parent_columns));
        for (i, _) in which.iter().enumerate().filter(|(_, w)| **w) {
            let Some(old) = tuple(&old, i)? else {
                // A NULL is referenced by nothing.
                continue;
            };
            let new = match &new {
                Some(n) => Some(
                    n.iter()
                        .map(|a| ScalarValue::try_from_array(a, i).map_err(SqlError::from))
                        .collect::<SqlResult<Vec<_>>>()?,
                ),
                None => None,
            };
            self.changes.push(ParentChange {
                link: link.clone(),
                old,
                new,
            });
        }
        Ok(())
    }

    /// Inserted full-width `rows` of `entry`: their references.
    pub(crate) fn inserted(&mut self, entry: &TableEntry, rows: &[ArrayRef]) -> SqlResult<()> {
        if entry.links.outbound.is_empty() {
            return Ok(());
        }
        let rows = conformed(entry, rows)?;
        let all = vec![true; rows.first().map_or(0, |a| a.len())];
        for link in &entry.links.outbound {
            self.check_references(link, &rows, &all)?;
        }
        Ok(())
    }

    /// Updated rows of `entry`, full width before (`old`, where the
    /// columns of [`TableEntry::old_row_columns`] are set) and after
    /// (`new`): changed references, and changed referenced keys.
    pub(crate) fn updated(
        &mut self,
        entry: &TableEntry,
        old: &[ArrayRef],
        new: &[ArrayRef],
    ) -> SqlResult<()> {
        if entry.links.is_empty() {
            return Ok(());
        }
        let new = conformed(entry, new)?;
        for link in &entry.links.outbound {
            let which = changed(old, &new, &link.child_columns)?;
            self.check_references(link, &new, &which)?;
        }
        for link in &entry.links.inbound {
            let which = changed(old, &new, &link.parent_columns)?;
            self.take_away(link, old, Some(&new), &which)?;
        }
        Ok(())
    }

    /// Deleted rows of `entry` (full width, as for [`FkWork::updated`]).
    pub(crate) fn deleted(&mut self, entry: &TableEntry, old: &[ArrayRef]) -> SqlResult<()> {
        let all = vec![true; old.first().map_or(0, |a| a.len())];
        for link in &entry.links.inbound {
            self.take_away(link, old, None, &all)?;
        }
        Ok(())
    }

    /// Checks the references (see [`check_parents`]) and returns the
    /// parent-side changes, for [`super::fk_actions::Cascade`].
    pub(crate) async fn finish(self, txn: &Transaction) -> SqlResult<Vec<ParentChange>> {
        check_parents(txn, self.checks).await?;
        Ok(self.changes)
    }
}

/// 23503 for a reference to a missing parent.
fn not_present(link: &FkLink, values: &[ArrayRef], i: usize) -> SqlError {
    SqlError::new(
        sqlstate::FOREIGN_KEY_VIOLATION,
        format!(
            "insert or update on table \"{}\" violates foreign key constraint \"{}\"",
            link.child_name, link.name
        ),
    )
    .with_detail(format!(
        "Key {} is not present in table \"{}\".",
        describe_values(&link.child_column_names, values, i),
        link.parent_name
    ))
}

/// Checks that every row of `values` (the referencing columns of `link`'s
/// child table, in constraint order) references an existing row, as `txn`
/// sees it, without locking anything: 23503 for the first that does not.
pub(crate) async fn references_exist(
    txn: &Transaction,
    link: &Arc<FkLink>,
    values: Vec<ArrayRef>,
) -> SqlResult<()> {
    let rows: Vec<(usize, ParentRef)> = link
        .parent_refs(&values)?
        .into_iter()
        .enumerate()
        .filter(|(_, r)| *r != ParentRef::Null)
        .collect();
    let check = ChildCheck {
        link: link.clone(),
        values,
        rows,
    };
    read_parents(txn, &[check], false).await
}

/// Reads every parent key the checks lead to, in `txn` (so after the
/// statement's own writes), and locks it: 23503 for the first that does
/// not exist.
async fn check_parents(txn: &Transaction, checks: Vec<ChildCheck>) -> SqlResult<()> {
    read_parents(txn, &checks, true).await
}

/// The reads of [`check_parents`], locking the keys read with `lock`.
async fn read_parents(txn: &Transaction, checks: &[ChildCheck], lock: bool) -> SqlResult<()> {
    for check in checks {
        let mut seen: HashSet<&[u8]> = HashSet::new();
        let mut keys: Vec<(usize, &[u8])> = Vec::new();
        for (i, r) in &check.rows {
            match r {
                ParentRef::Key(k) => {
                    if seen.insert(k.as_slice()) {
                        keys.push((*i, k.as_slice()));
                    }
                }
                ParentRef::Impossible => return Err(not_present(&check.link, &check.values, *i)),
                ParentRef::Null => {}
            }
        }
        for chunk in keys.chunks(CONCURRENT_READS) {
            let mut reads = Vec::with_capacity(chunk.len());
            for &(i, key) in chunk {
                reads.push(async move { (i, key, txn.get(key).await) });
            }
            for (i, key, read) in futures::future::join_all(reads).await {
                if read?.is_none() {
                    return Err(not_present(&check.link, &check.values, i));
                }
                if lock {
                    txn.lock(key.to_vec())?;
                }
            }
        }
    }
    Ok(())
}

/// A statement on a fast path never changes a referenced key (see
/// `FastPlan::detect`): changes left for the actions there are a bug.
pub(crate) fn expect_no_changes(changes: &[ParentChange]) -> SqlResult<()> {
    if changes.is_empty() {
        Ok(())
    } else {
        Err(SqlError::internal(
            "a fast-path write changed a referenced key",
        ))
    }
}
