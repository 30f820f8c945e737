//! [`IndexDecoder`]: the columns a secondary index's entries hold (its key
//! columns, the primary key, its INCLUDE columns) decoded from the entries
//! into Arrow batches, so a query that needs nothing else reads the index
//! alone (an index-only scan).

use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::SchemaRef;
use holo_txn_types::codec::get_uvarint;

use super::column::{ColumnBuilder, wire_type};
use super::index::{INDEX_VALUE_V1, IndexCodec};
use super::key::corrupt;
use super::row::{key_element, value_fields};
use crate::error::{SqlError, SqlResult};
use crate::types::SqlType;

impl IndexCodec {
    /// Whether the entries hold every table column of `projection`.
    pub fn covers(&self, projection: &[usize]) -> bool {
        projection
            .iter()
            .all(|p| self.column_positions().any(|c| c == *p))
    }

    /// A decoder of entries into `projection` (table column positions,
    /// all [`IndexCodec::covers`]ed) with `schema`.
    pub fn decoder(
        &self,
        projection: &[usize],
        schema: SchemaRef,
        capacity: usize,
    ) -> IndexDecoder {
        let columns = self.columns();
        let mut slot_of = vec![None; columns.len()];
        for (slot, &p) in projection.iter().enumerate() {
            slot_of[p] = Some(slot);
        }
        IndexDecoder {
            keys: self.key_columns().collect(),
            suffix: self.suffix_columns().to_vec(),
            types: columns.iter().map(|c| c.ty).collect(),
            ids: columns.iter().map(|c| c.id).collect(),
            prefix: self.prefix().to_vec(),
            builders: projection
                .iter()
                .map(|&p| ColumnBuilder::new(columns[p].ty, capacity))
                .collect(),
            slot_of,
            filled: vec![false; projection.len()],
            schema,
            rows: 0,
        }
    }
}

/// Decodes one index's entries into batches of some of its columns.
pub struct IndexDecoder {
    keys: Vec<(usize, bool)>,
    suffix: Vec<usize>,
    types: Vec<SqlType>,
    ids: Vec<u32>,
    prefix: Vec<u8>,
    builders: Vec<ColumnBuilder>,
    slot_of: Vec<Option<usize>>,
    filled: Vec<bool>,
    schema: SchemaRef,
    rows: usize,
}

impl IndexDecoder {
    /// Entries decoded since the last [`IndexDecoder::finish`].
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Decodes one key element of table column `p` from `k` (its bytes
    /// complemented when `descending`); returns the bytes it took.
    fn element(&mut self, p: usize, descending: bool, k: &[u8]) -> SqlResult<usize> {
        let plain: std::borrow::Cow<'_, [u8]> = if descending {
            k.iter().map(|b| !b).collect::<Vec<u8>>().into()
        } else {
            k.into()
        };
        let mut rest: &[u8] = &plain;
        let (slot, ty) = (self.slot_of[p], self.types[p]);
        key_element(&mut rest, ty, slot, &mut self.builders, &mut self.filled)?;
        Ok(plain.len() - rest.len())
    }

    /// Decodes one entry.
    pub fn push(&mut self, key: &[u8], value: &[u8]) -> SqlResult<()> {
        self.filled.iter_mut().for_each(|f| *f = false);
        let mut k = key
            .strip_prefix(self.prefix.as_slice())
            .ok_or_else(|| corrupt("key outside the index"))?;
        for i in 0..self.keys.len() {
            let (p, descending) = self.keys[i];
            let used = self.element(p, descending, k)?;
            k = &k[used..];
        }
        let mut v = value
            .strip_prefix(&[INDEX_VALUE_V1])
            .ok_or_else(|| corrupt("unknown index value format"))?;
        let n = get_uvarint(&mut v).map_err(|e| corrupt(&e.to_string()))? as usize;
        let in_value = v.get(..n).ok_or_else(|| corrupt("truncated index value"))?;
        v = &v[n..];
        // The primary key's other columns: in the value (unique shape) or
        // after the key columns (non-unique shape).
        let mut suffix = if n > 0 { in_value } else { k };
        for i in 0..self.suffix.len() {
            let used = self.element(self.suffix[i], false, suffix)?;
            suffix = &suffix[used..];
        }
        // INCLUDE columns, as row fields.
        let (ids, types, slot_of) = (&self.ids, &self.types, &self.slot_of);
        let slot = |id: u32, wt: u64| {
            ids.iter()
                .position(|&c| c == id)
                .filter(|&p| wire_type(types[p]) == wt)
                .and_then(|p| slot_of[p])
        };
        value_fields(v, slot, &mut self.builders, &mut self.filled)?;
        for (slot, filled) in self.filled.iter().enumerate() {
            if !filled {
                self.builders[slot].append_null();
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// The entries decoded so far as a batch; the decoder starts over.
    pub fn finish(&mut self) -> SqlResult<RecordBatch> {
        let columns = self
            .builders
            .iter_mut()
            .map(|b| b.finish())
            .collect::<SqlResult<Vec<_>>>()?;
        let rows = std::mem::take(&mut self.rows);
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|e| SqlError::internal(format!("building index batch: {e}")))
    }
}
