//! [`RowCodec`]: turns rows of a table into primary-index key/value pairs and
//! back.
//!
//! Row value format (version 1):
//!
//! ```text
//! 0x01                      format version
//! u32 BE                    table schema version the row was written with
//! { uvarint(column_id << 3 | wire_type)  payload }*   non-key, non-NULL columns
//! ```
//!
//! Key columns live only in the key. NULL columns are absent. Every field
//! names its column id and wire type, so readers skip fields of columns they
//! do not know (dropped or added later) and treat absent columns as NULL.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::SchemaRef;
use holo_txn_types::codec::{get_uvarint, put_uvarint};

use super::column::{ColumnBuilder, ColumnReader, conform, skip_field, wire_type};
use super::key::{PRIMARY_INDEX_ID, TAG_NULL, TAG_VALUE, corrupt, get_escaped, index_prefix, take};
use crate::catalog::descriptor::TableDescriptor;
use crate::error::{SqlError, SqlResult, sqlstate};
use crate::types::SqlType;

/// Row value format version written by this code.
pub const ROW_FORMAT_V1: u8 = 0x01;

/// One column as the codec sees it.
#[derive(Debug, Clone)]
pub struct CodecColumn {
    /// Stable column id.
    pub id: u32,
    /// Column name.
    pub name: String,
    /// Column type.
    pub ty: SqlType,
}

/// Encoder and decoder of one table version's rows.
#[derive(Debug)]
pub struct RowCodec {
    table_id: u32,
    schema_version: u32,
    columns: Vec<CodecColumn>,
    pk: Vec<usize>,
    non_pk: Vec<usize>,
    prefix: Vec<u8>,
    /// Per column: the value of rows older than the column (below the
    /// schema version) without a field of it.
    missing: Vec<Option<(u32, Vec<u8>)>>,
    /// Write-only columns: carried from a row's old value by updates.
    hidden: Vec<HiddenColumn>,
}

/// A write-only column as the codec sees it.
#[derive(Debug, Clone)]
struct HiddenColumn {
    id: u32,
    wire: u64,
    missing: Option<(u32, Vec<u8>)>,
}

impl RowCodec {
    /// The codec of `desc`'s primary index.
    pub fn new(desc: &TableDescriptor) -> SqlResult<RowCodec> {
        let columns: Vec<CodecColumn> = desc
            .columns
            .iter()
            .map(|c| CodecColumn {
                id: c.id,
                name: c.name.clone(),
                ty: c.ty,
            })
            .collect();
        let by_id: HashMap<u32, usize> =
            columns.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
        let pk =
            desc.primary_key
                .column_ids
                .iter()
                .map(|id| {
                    by_id.get(id).copied().ok_or_else(|| {
                        SqlError::internal(format!("primary key column {id} missing"))
                    })
                })
                .collect::<SqlResult<Vec<_>>>()?;
        let non_pk = (0..columns.len()).filter(|i| !pk.contains(i)).collect();
        let missing_of = |c: &crate::catalog::descriptor::ColumnDescriptor| {
            c.missing
                .as_ref()
                .map(|m| (m.before_version, m.value.clone()))
        };
        Ok(RowCodec {
            table_id: desc.id,
            schema_version: desc.version,
            columns,
            pk,
            non_pk,
            prefix: index_prefix(desc.id, PRIMARY_INDEX_ID),
            missing: desc.columns.iter().map(missing_of).collect(),
            hidden: desc
                .hidden_columns
                .iter()
                .map(|c| HiddenColumn {
                    id: c.id,
                    wire: wire_type(c.ty),
                    missing: missing_of(c),
                })
                .collect(),
        })
    }

    /// Whether the table has write-only columns, whose values updates must
    /// carry over from the rows' old values ([`RowCodec::carry_hidden`]).
    pub fn has_hidden(&self) -> bool {
        !self.hidden.is_empty()
    }

    /// Appends to `value` (a row value this codec encoded) the fields of
    /// the write-only columns held by `old`, the row's value before the
    /// update; a value older than such a column's missing value gets that
    /// value written out.
    pub fn carry_hidden(&self, value: &mut Vec<u8>, old: &[u8]) -> SqlResult<()> {
        let (stamp, mut v) = row_fields(old)?;
        let mut carried = vec![false; self.hidden.len()];
        while !v.is_empty() {
            let start = v;
            let header = get_uvarint(&mut v).map_err(|e| corrupt(&e.to_string()))?;
            let (id, wt) = ((header >> 3) as u32, header & 7);
            skip_field(&mut v, wt)?;
            if let Some(h) = self.hidden.iter().position(|h| h.id == id && h.wire == wt) {
                value.extend_from_slice(&start[..start.len() - v.len()]);
                carried[h] = true;
            }
        }
        for (h, done) in self.hidden.iter().zip(carried) {
            // A row written by a newer version (where the column is
            // visible) without a field of it holds NULL there.
            if let Some((before, payload)) = &h.missing
                && !done
                && stamp < *before
                && stamp <= self.schema_version
            {
                put_uvarint(value, (u64::from(h.id) << 3) | h.wire);
                value.extend_from_slice(payload);
            }
        }
        // The old row was written where the columns are visible: keep its
        // stamp, so a column it had NULL in (no field) still reads NULL
        // there rather than the column's missing value.
        if stamp > self.schema_version
            && let Some(s) = value.get_mut(1..5)
        {
            s.copy_from_slice(&stamp.to_be_bytes());
        }
        Ok(())
    }

    /// The table's columns in table order.
    pub fn columns(&self) -> &[CodecColumn] {
        &self.columns
    }

    /// Indices (in table order) of the primary key columns, in key order.
    pub fn pk_indices(&self) -> &[usize] {
        &self.pk
    }

    /// Prefix of the primary index's keys.
    pub fn index_prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The table id.
    pub fn table_id(&self) -> u32 {
        self.table_id
    }

    /// Readers over `arrays` (one per table column, in table order) after
    /// conforming them to the column types.
    fn conformed(&self, arrays: &[ArrayRef]) -> SqlResult<Vec<ArrayRef>> {
        if arrays.len() != self.columns.len() {
            return Err(SqlError::internal(format!(
                "expected {} columns, got {}",
                self.columns.len(),
                arrays.len()
            )));
        }
        arrays
            .iter()
            .zip(&self.columns)
            .map(|(a, c)| conform(a, c.ty))
            .collect()
    }

    /// Encodes the primary key of row `i` from key column readers (in key
    /// order).
    fn encode_key_row(
        &self,
        readers: &[&ColumnReader<'_>],
        i: usize,
        out: &mut Vec<u8>,
    ) -> SqlResult<()> {
        out.extend_from_slice(&self.prefix);
        for (k, r) in readers.iter().enumerate() {
            if r.is_null(i) {
                let col = &self.columns[self.pk[k]];
                return Err(SqlError::new(
                    sqlstate::NOT_NULL_VIOLATION,
                    format!(
                        "null value in column \"{}\" violates not-null constraint",
                        col.name
                    ),
                ));
            }
            out.push(TAG_VALUE);
            r.write_key(i, out);
        }
        Ok(())
    }

    /// Encodes every row of `arrays` (table order) as `(key, value)`.
    pub fn encode_rows(&self, arrays: &[ArrayRef]) -> SqlResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let arrays = self.conformed(arrays)?;
        let readers = arrays
            .iter()
            .zip(&self.columns)
            .map(|(a, c)| ColumnReader::new(a, c.ty))
            .collect::<SqlResult<Vec<_>>>()?;
        let pk_readers: Vec<&ColumnReader<'_>> = self.pk.iter().map(|&c| &readers[c]).collect();
        let rows = arrays.first().map_or(0, |a| a.len());
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            let mut key = Vec::with_capacity(self.prefix.len() + 16);
            self.encode_key_row(&pk_readers, i, &mut key)?;
            let mut value = Vec::with_capacity(32);
            value.push(ROW_FORMAT_V1);
            value.extend_from_slice(&self.schema_version.to_be_bytes());
            for &c in &self.non_pk {
                put_field(&mut value, &self.columns[c], &readers[c], i);
            }
            out.push((key, value));
        }
        Ok(out)
    }

    /// Encodes primary keys from key column arrays given in key order.
    pub fn encode_keys(&self, pk_arrays: &[ArrayRef]) -> SqlResult<Vec<Vec<u8>>> {
        if pk_arrays.len() != self.pk.len() {
            return Err(SqlError::internal("wrong number of key columns"));
        }
        self.encode_key_prefixes(pk_arrays)
    }

    /// Encodes keys from the first `arrays.len()` key columns (a prefix of
    /// the primary key sorts before every key that starts with it).
    pub fn encode_key_prefixes(&self, arrays: &[ArrayRef]) -> SqlResult<Vec<Vec<u8>>> {
        if arrays.len() > self.pk.len() {
            return Err(SqlError::internal("too many key columns"));
        }
        let conformed = arrays
            .iter()
            .zip(&self.pk)
            .map(|(a, &c)| conform(a, self.columns[c].ty))
            .collect::<SqlResult<Vec<_>>>()?;
        let readers = conformed
            .iter()
            .zip(&self.pk)
            .map(|(a, &c)| ColumnReader::new(a, self.columns[c].ty))
            .collect::<SqlResult<Vec<_>>>()?;
        let readers: Vec<&ColumnReader<'_>> = readers.iter().collect();
        let rows = conformed.first().map_or(0, |a| a.len());
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            let mut key = Vec::with_capacity(self.prefix.len() + 16);
            self.encode_key_row(&readers, i, &mut key)?;
            out.push(key);
        }
        Ok(out)
    }

    /// A decoder producing `projection` (table column indices) into batches
    /// of `schema`.
    pub fn decoder(
        self: &Arc<Self>,
        projection: Vec<usize>,
        schema: SchemaRef,
        capacity: usize,
    ) -> RowDecoder {
        let builders = projection
            .iter()
            .map(|&c| ColumnBuilder::new(self.columns[c].ty, capacity))
            .collect();
        let mut slot_of = vec![None; self.columns.len()];
        for (slot, &c) in projection.iter().enumerate() {
            slot_of[c] = Some(slot);
        }
        // Column id -> (output slot, wire type), for projected non-key columns.
        let max_id = self
            .columns
            .iter()
            .map(|c| c.id as usize)
            .max()
            .unwrap_or(0);
        let mut slot_by_id = vec![None; max_id + 1];
        for (c, col) in self.columns.iter().enumerate() {
            if let Some(slot) = slot_of[c] {
                slot_by_id[col.id as usize] = Some((slot, wire_type(col.ty)));
            }
        }
        let missing = projection
            .iter()
            .map(|&c| self.missing[c].clone())
            .collect();
        RowDecoder {
            codec: self.clone(),
            missing,
            builders,
            slot_by_id,
            slot_of,
            filled: vec![false; projection.len()],
            schema,
            rows: 0,
        }
    }
}

impl RowCodec {
    /// Renders a primary key as PostgreSQL does in error details:
    /// `(a, b)=(1, x)`. `None` when `key` is not a key of this table.
    pub fn describe_key(&self, key: &[u8]) -> Option<String> {
        use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
        let mut k = key.strip_prefix(self.prefix.as_slice())?;
        let mut names = Vec::new();
        let mut values = Vec::new();
        for &c in &self.pk {
            let col = &self.columns[c];
            let (&tag, rest) = k.split_first()?;
            k = rest;
            names.push(col.name.clone());
            if tag == TAG_NULL {
                values.push("NULL".to_string());
                continue;
            }
            let mut b = ColumnBuilder::new(col.ty, 1);
            b.append_key(&mut k).ok()?;
            let array = b.finish().ok()?;
            let fmt = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default()).ok()?;
            values.push(fmt.value(0).to_string());
        }
        Some(format!("({})=({})", names.join(", "), values.join(", ")))
    }
}

/// Appends row `i` of `r` as a value field of `col` (header and payload);
/// a NULL writes nothing.
pub(crate) fn put_field(out: &mut Vec<u8>, col: &CodecColumn, r: &ColumnReader<'_>, i: usize) {
    if r.is_null(i) {
        return;
    }
    put_uvarint(out, (u64::from(col.id) << 3) | wire_type(col.ty));
    r.write_value(i, out);
}

/// Decodes one key element (tag, then payload) of type `ty` from `k` into
/// `builders[slot]` and marks the slot `filled`; without a slot, skips it.
pub(crate) fn key_element(
    k: &mut &[u8],
    ty: SqlType,
    slot: Option<usize>,
    builders: &mut [ColumnBuilder],
    filled: &mut [bool],
) -> SqlResult<()> {
    let (&tag, rest) = k.split_first().ok_or_else(|| corrupt("truncated key"))?;
    *k = rest;
    // A column named twice in one key is taken from its first element.
    let slot = slot.filter(|&s| !filled[s]);
    match (tag, slot) {
        (TAG_NULL, Some(slot)) => {
            builders[slot].append_null();
            filled[slot] = true;
        }
        (TAG_NULL, None) => {}
        (TAG_VALUE, Some(slot)) => {
            builders[slot].append_key(k)?;
            filled[slot] = true;
        }
        (TAG_VALUE, None) => skip_key(k, ty)?,
        _ => return Err(corrupt("bad key tag")),
    }
    Ok(())
}

/// Decodes row-format fields (`header`, payload)* from `v`: a field whose
/// column `slot(id, wire type)` places, into `builders[slot]` (the first
/// one only, marking it `filled`); any other is skipped.
pub(crate) fn value_fields(
    mut v: &[u8],
    slot: impl Fn(u32, u64) -> Option<usize>,
    builders: &mut [ColumnBuilder],
    filled: &mut [bool],
) -> SqlResult<()> {
    while !v.is_empty() {
        let header = get_uvarint(&mut v).map_err(|e| corrupt(&e.to_string()))?;
        let (id, wt) = ((header >> 3) as u32, header & 7);
        match slot(id, wt) {
            Some(slot) if !filled[slot] => {
                builders[slot].append_value(&mut v)?;
                filled[slot] = true;
            }
            _ => skip_field(&mut v, wt)?,
        }
    }
    Ok(())
}

/// Skips one key element payload of type `ty`.
pub(crate) fn skip_key(input: &mut &[u8], ty: SqlType) -> SqlResult<()> {
    match ty {
        SqlType::Boolean => {
            take::<1>(input)?;
        }
        SqlType::SmallInt => {
            take::<2>(input)?;
        }
        SqlType::Integer | SqlType::Real | SqlType::Date => {
            take::<4>(input)?;
        }
        SqlType::BigInt | SqlType::Double | SqlType::Timestamp | SqlType::TimestampTz => {
            take::<8>(input)?;
        }
        SqlType::Numeric { .. } => {
            take::<16>(input)?;
        }
        SqlType::Text | SqlType::Varchar { .. } | SqlType::Bytea => {
            get_escaped(input)?;
        }
    }
    Ok(())
}

/// The schema version a row value was written at and its fields.
fn row_fields(value: &[u8]) -> SqlResult<(u32, &[u8])> {
    let (&format, mut v) = value
        .split_first()
        .ok_or_else(|| corrupt("empty row value"))?;
    if format != ROW_FORMAT_V1 {
        return Err(corrupt("unknown row format version"));
    }
    let stamp = u32::from_be_bytes(take::<4>(&mut v)?);
    Ok((stamp, v))
}

/// Decodes key/value pairs of one table into Arrow batches.
pub struct RowDecoder {
    codec: Arc<RowCodec>,
    /// Per output slot: the column's missing value (see [`RowCodec`]).
    missing: Vec<Option<(u32, Vec<u8>)>>,
    builders: Vec<ColumnBuilder>,
    slot_by_id: Vec<Option<(usize, u64)>>,
    slot_of: Vec<Option<usize>>,
    filled: Vec<bool>,
    schema: SchemaRef,
    rows: usize,
}

impl RowDecoder {
    /// Rows decoded since the last [`RowDecoder::finish`].
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Decodes one row.
    pub fn push(&mut self, key: &[u8], value: &[u8]) -> SqlResult<()> {
        let codec = &self.codec;
        let mut k = key
            .strip_prefix(codec.prefix.as_slice())
            .ok_or_else(|| corrupt("key outside the table's index"))?;
        self.filled.iter_mut().for_each(|f| *f = false);
        for &c in &codec.pk {
            let ty = codec.columns[c].ty;
            key_element(
                &mut k,
                ty,
                self.slot_of[c],
                &mut self.builders,
                &mut self.filled,
            )?;
        }
        let (stamp, v) = row_fields(value)?;
        let slot_by_id = &self.slot_by_id;
        let slot = |id: u32, wt: u64| match slot_by_id.get(id as usize) {
            Some(Some((slot, expected))) if *expected == wt => Some(*slot),
            _ => None,
        };
        value_fields(v, slot, &mut self.builders, &mut self.filled)?;
        for (slot, filled) in self.filled.iter().enumerate() {
            if *filled {
                continue;
            }
            match &self.missing[slot] {
                Some((before, payload)) if stamp < *before => {
                    self.builders[slot].append_value(&mut payload.as_slice())?;
                }
                _ => self.builders[slot].append_null(),
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// The rows decoded so far as a batch; the decoder starts over empty.
    pub fn finish(&mut self) -> SqlResult<RecordBatch> {
        let columns = self
            .builders
            .iter_mut()
            .map(ColumnBuilder::finish)
            .collect::<SqlResult<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(self.rows));
        self.rows = 0;
        RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)
            .map_err(|e| SqlError::internal(format!("building batch: {e}")))
    }
}

#[cfg(test)]
mod tests;
