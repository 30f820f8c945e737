//! The writes of inserted, updated and deleted rows: the primary row and the
//! entries of every secondary index writers maintain, so a committed row
//! and its index entries are always both visible or both absent.
//!
//! Within one statement every delete comes before every insert, so a key
//! that one row leaves and another takes (a swap of unique values) becomes
//! one overwrite in the transaction's buffer, not a false violation.
//! What the rows mean for foreign keys is noted on the way
//! ([`super::foreign_keys::FkWork`]).

use datafusion::arrow::array::{ArrayRef, new_null_array};
use holo_txn_types::MutationOp;

use super::foreign_keys::FkWork;
use crate::catalog::TableEntry;
use crate::catalog::descriptor::IndexState;
use crate::codec::column::{ColumnReader, conform};
use crate::codec::index::{IndexCodec, IndexEntry, pk_suffix_in};
use crate::error::{SqlError, SqlResult};

/// One buffered write.
pub(crate) type Write = (Vec<u8>, MutationOp);

/// The delete of a unique-shape entry of a unique index that is still
/// being built: old rows have no entry yet, so the key may hold another
/// row's entry. It deletes only this row's entry (`value`) and writes any
/// other back unchanged, so it still conflicts with a backfill writing the
/// key ([`Deferred::resolve`]).
#[derive(Debug)]
struct GuardedDelete {
    key: Vec<u8>,
    value: Vec<u8>,
}

/// The new value of an updated row of a table with write-only columns:
/// their values are carried over from the row's old value
/// ([`crate::codec::row::RowCodec::carry_hidden`]).
#[derive(Debug)]
struct CarriedRow {
    old_key: Vec<u8>,
    key: Vec<u8>,
    value: Vec<u8>,
    insert: bool,
}

/// Writes that read the store before they are known: made when a statement
/// ends, before its other writes are buffered.
#[derive(Debug, Default)]
pub(crate) struct Deferred {
    guarded: Vec<GuardedDelete>,
    carried: Vec<CarriedRow>,
    /// Foreign-key work, done once the writes are buffered.
    pub(crate) fk: FkWork,
}

impl Deferred {
    /// Whether there is nothing to read.
    pub(crate) fn is_empty(&self) -> bool {
        self.guarded.is_empty() && self.carried.is_empty()
    }

    /// The writes, read in `txn`: the guarded deletes, to buffer before
    /// the statement's other writes, and the carried rows (puts and
    /// inserts), to buffer after them.
    pub(crate) async fn resolve(
        self,
        txn: &holo_kv::Transaction,
        entry: &TableEntry,
    ) -> SqlResult<(Vec<Write>, Vec<Write>)> {
        let mut out = Vec::with_capacity(self.guarded.len());
        for g in self.guarded {
            let op = match txn.get(&g.key).await? {
                Some(v) if pk_suffix_in(&v) != pk_suffix_in(&g.value) => MutationOp::Put(v),
                _ => MutationOp::Delete,
            };
            out.push((g.key, op));
        }
        let mut rows = Vec::with_capacity(self.carried.len());
        for mut c in self.carried {
            if let Some(old) = txn.get(&c.old_key).await? {
                entry.codec.carry_hidden(&mut c.value, &old)?;
            }
            let op = if c.insert {
                MutationOp::Insert(c.value)
            } else {
                MutationOp::Put(c.value)
            };
            rows.push((c.key, op));
        }
        Ok((out, rows))
    }
}

/// The delete of `before` (an entry of `index` for a row going away).
fn deleting(index: &IndexCodec, before: IndexEntry, out: &mut Vec<Write>, deferred: &mut Deferred) {
    if before.unique && index.desc().state != IndexState::Public {
        deferred.guarded.push(GuardedDelete {
            key: before.key,
            value: before.value,
        });
    } else {
        out.push((before.key, MutationOp::Delete));
    }
}

/// Writes inserting `rows` (validated, one array per table column).
pub(crate) fn insert_writes(
    entry: &TableEntry,
    rows: &[ArrayRef],
    out: &mut Vec<Write>,
    deferred: &mut Deferred,
) -> SqlResult<()> {
    if let Some(column) = &entry.insert_blocker {
        // ADD COLUMN ... NOT NULL without a default is in progress: a new
        // row would have NULL there once the column is visible.
        return Err(SqlError::new(
            crate::error::sqlstate::NOT_NULL_VIOLATION,
            format!(
                "null value in column \"{column}\" of relation \"{}\" violates not-null constraint",
                entry.desc.name
            ),
        ));
    }
    for (key, value) in entry.codec.encode_rows(rows)? {
        out.push((key, MutationOp::Insert(value)));
    }
    deferred.fk.inserted(entry, rows)?;
    if entry.indexes.is_empty() {
        return Ok(());
    }
    let columns = conformed(entry, rows)?;
    let readers = readers(entry, &columns)?;
    for i in 0..row_count(rows) {
        for index in entry.indexes.iter().filter(|i| i.writers_add()) {
            out.push(adding(index.entry(&readers, i)));
        }
    }
    Ok(())
}

/// Writes deleting rows whose current values of [`TableEntry::old_row_columns`] are
/// `old` (in that order).
pub(crate) fn delete_writes(
    entry: &TableEntry,
    old: &[ArrayRef],
    out: &mut Vec<Write>,
    deferred: &mut Deferred,
) -> SqlResult<()> {
    let rows = widen(entry, old)?;
    for key in old_keys(entry, &rows)? {
        out.push((key, MutationOp::Delete));
    }
    deferred.fk.deleted(entry, &rows)?;
    if entry.indexes.is_empty() {
        return Ok(());
    }
    let readers = readers(entry, &rows)?;
    for i in 0..row_count(old) {
        for index in &entry.indexes {
            deleting(index, index.entry(&readers, i), out, deferred);
        }
    }
    Ok(())
}

/// The writes of updated rows: `new` holds every column's new value, `old`
/// the current values of [`TableEntry::old_row_columns`]. The row is a put when its key
/// stays, a delete of the old key and an insert of the new one when it
/// changes; an index entry is written only when it changes.
pub(crate) fn update_writes(
    entry: &TableEntry,
    new: &[ArrayRef],
    old: &[ArrayRef],
    deletes: &mut Vec<Write>,
    puts: &mut Vec<Write>,
    deferred: &mut Deferred,
) -> SqlResult<()> {
    let old_rows = widen(entry, old)?;
    let new_rows = entry.codec.encode_rows(new)?;
    deferred.fk.updated(entry, &old_rows, new)?;
    let carry = entry.codec.has_hidden();
    for ((key, value), old) in new_rows.into_iter().zip(old_keys(entry, &old_rows)?) {
        let insert = key != old;
        if insert {
            deletes.push((old.clone(), MutationOp::Delete));
        }
        if carry {
            deferred.carried.push(CarriedRow {
                old_key: old,
                key,
                value,
                insert,
            });
        } else if insert {
            puts.push((key, MutationOp::Insert(value)));
        } else {
            puts.push((key, MutationOp::Put(value)));
        }
    }
    if entry.indexes.is_empty() {
        return Ok(());
    }
    let new_columns = conformed(entry, new)?;
    let new_readers = readers(entry, &new_columns)?;
    let old_readers = readers(entry, &old_rows)?;
    for i in 0..row_count(new) {
        for index in &entry.indexes {
            let before = index.entry(&old_readers, i);
            if !index.writers_add() {
                deleting(index, before, deletes, deferred);
                continue;
            }
            let after = index.entry(&new_readers, i);
            if before.key == after.key {
                if before.value != after.value {
                    puts.push((after.key, MutationOp::Put(after.value)));
                }
            } else {
                deleting(index, before, deletes, deferred);
                puts.push(adding(after));
            }
        }
    }
    Ok(())
}

/// The entries of `index` for full-width `rows` (one array per table
/// column): what a backfill writes.
pub(crate) fn index_entries(
    entry: &TableEntry,
    index: &IndexCodec,
    rows: &[ArrayRef],
) -> SqlResult<Vec<IndexEntry>> {
    let columns = conformed(entry, rows)?;
    let readers = readers(entry, &columns)?;
    Ok((0..row_count(rows))
        .map(|i| index.entry(&readers, i))
        .collect())
}

/// The write adding `e`: an insert (the key must not exist) for the unique
/// shape, a put otherwise.
fn adding(e: IndexEntry) -> Write {
    if e.unique {
        (e.key, MutationOp::Insert(e.value))
    } else {
        (e.key, MutationOp::Put(e.value))
    }
}

/// The primary keys of full-width `rows`.
fn old_keys(entry: &TableEntry, rows: &[ArrayRef]) -> SqlResult<Vec<Vec<u8>>> {
    let pk: Vec<ArrayRef> = entry
        .codec
        .pk_indices()
        .iter()
        .map(|&c| rows[c].clone())
        .collect();
    entry.codec.encode_keys(&pk)
}

fn row_count(arrays: &[ArrayRef]) -> usize {
    arrays.first().map_or(0, |a| a.len())
}

/// `arrays` conformed to the table's column types.
fn conformed(entry: &TableEntry, arrays: &[ArrayRef]) -> SqlResult<Vec<ArrayRef>> {
    arrays
        .iter()
        .zip(&entry.desc.columns)
        .map(|(a, c)| conform(a, c.ty))
        .collect()
}

fn readers<'a>(entry: &TableEntry, columns: &'a [ArrayRef]) -> SqlResult<Vec<ColumnReader<'a>>> {
    columns
        .iter()
        .zip(&entry.desc.columns)
        .map(|(a, c)| ColumnReader::new(a, c.ty))
        .collect()
}

/// One array per table column from the arrays of [`TableEntry::old_row_columns`]; the
/// columns no write needs are NULL.
fn widen(entry: &TableEntry, old: &[ArrayRef]) -> SqlResult<Vec<ArrayRef>> {
    let positions = &entry.old_row_columns;
    if positions.len() != old.len() {
        return Err(SqlError::internal(format!(
            "expected {} current columns, got {}",
            positions.len(),
            old.len()
        )));
    }
    let rows = row_count(old);
    let mut out: Vec<ArrayRef> = entry
        .desc
        .columns
        .iter()
        .map(|c| new_null_array(&c.ty.arrow_type(), rows))
        .collect();
    for (&p, array) in positions.iter().zip(old) {
        out[p] = conform(array, entry.desc.columns[p].ty)?;
    }
    Ok(out)
}
