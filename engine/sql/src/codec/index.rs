//! [`IndexCodec`]: the entries of one secondary index for rows of its table.
//!
//! Keys live beside the primary index's, under the index's own id:
//!
//! ```text
//! unique shape:      0x10 | table u32 | index u16 | key tuple
//!                    -> 0x01 | uvarint(n) | pk suffix (n bytes) | INCLUDE fields
//! non-unique shape:  0x10 | table u32 | index u16 | key tuple | pk suffix
//!                    -> 0x01 | 0x00 | INCLUDE fields
//! ```
//!
//! The key tuple holds the index's key columns, each element encoded as in
//! the primary key ([`super::key`]) and, for a DESC column, with every byte
//! (tag included) complemented, so that NULLs sort first as in PostgreSQL's
//! DESC default. The pk suffix holds the primary-key columns that are not
//! already key columns, ascending, so any entry leads back to its row.
//! A unique index uses the unique shape for entries whose key columns are all
//! non-NULL (two rows with one such key would write the same index key: the
//! commit's insert check makes that a unique violation), and the non-unique
//! shape for entries with a NULL (NULLs are distinct, as in PostgreSQL). A
//! non-unique index always uses the non-unique shape. INCLUDE fields use the
//! row value's field format ([`super::row`]).

use holo_txn_types::codec::{get_uvarint, put_uvarint};

use super::column::{ColumnBuilder, ColumnReader};
use super::key::{TAG_NULL, TAG_VALUE, index_prefix};
use super::row::{CodecColumn, put_field, skip_key};
use crate::catalog::descriptor::{IndexDescriptor, IndexState, TableDescriptor};
use crate::error::{SqlError, SqlResult};

/// Format byte of index entry values.
pub const INDEX_VALUE_V1: u8 = 0x01;

/// One index entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The entry's key.
    pub key: Vec<u8>,
    /// The entry's value.
    pub value: Vec<u8>,
    /// Whether the key must not exist yet (the unique shape).
    pub unique: bool,
}

/// The pk suffix stored in a unique-shape entry's `value`: two entries of
/// one key point to the same row exactly when these are equal.
pub fn pk_suffix_in(value: &[u8]) -> Option<&[u8]> {
    let rest = value.strip_prefix(&[INDEX_VALUE_V1])?;
    let mut input = rest;
    let n = get_uvarint(&mut input).ok()? as usize;
    input.get(..n)
}

/// Encoder of one secondary index's entries.
#[derive(Debug)]
pub struct IndexCodec {
    desc: IndexDescriptor,
    prefix: Vec<u8>,
    /// Key columns: (table column position, descending).
    keys: Vec<(usize, bool)>,
    /// Primary-key columns (table positions) that are not key columns.
    suffix: Vec<usize>,
    /// INCLUDE columns (table positions).
    include: Vec<usize>,
    columns: Vec<CodecColumn>,
    /// Number of primary-key columns.
    pk_len: usize,
}

impl IndexCodec {
    /// The codec of index `index` of `table`, whose row columns are
    /// `columns` (table order).
    pub fn new(
        table: &TableDescriptor,
        index: &IndexDescriptor,
        columns: &[CodecColumn],
    ) -> SqlResult<IndexCodec> {
        let position = |id: u32| {
            columns.iter().position(|c| c.id == id).ok_or_else(|| {
                SqlError::internal(format!("index \"{}\": column {id} missing", index.name))
            })
        };
        let keys = index
            .columns
            .iter()
            .map(|c| Ok((position(c.id)?, c.descending)))
            .collect::<SqlResult<Vec<_>>>()?;
        let suffix = table
            .primary_key
            .column_ids
            .iter()
            .map(|&id| position(id))
            .collect::<SqlResult<Vec<_>>>()?
            .into_iter()
            .filter(|p| !keys.iter().any(|(k, _)| k == p))
            .collect();
        let include = index
            .include_ids
            .iter()
            .map(|&id| position(id))
            .collect::<SqlResult<Vec<_>>>()?;
        Ok(IndexCodec {
            prefix: index_prefix(table.id, index.id),
            desc: index.clone(),
            keys,
            suffix,
            include,
            columns: columns.to_vec(),
            pk_len: table.primary_key.column_ids.len(),
        })
    }

    /// The index's descriptor.
    pub fn desc(&self) -> &IndexDescriptor {
        &self.desc
    }

    /// Prefix of the index's keys.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// Whether writers add entries (not only delete them).
    pub fn writers_add(&self) -> bool {
        self.desc.state != IndexState::DeleteOnly
    }

    /// Table positions of every column an entry is made of.
    pub fn column_positions(&self) -> impl Iterator<Item = usize> + '_ {
        self.keys
            .iter()
            .map(|(p, _)| *p)
            .chain(self.suffix.iter().copied())
            .chain(self.include.iter().copied())
    }

    /// Key columns: (table position, descending).
    pub fn key_columns(&self) -> impl Iterator<Item = (usize, bool)> + '_ {
        self.keys.iter().copied()
    }

    /// Primary-key columns (table positions) that are not key columns, in
    /// primary-key order: the pk suffix of every entry.
    pub fn suffix_columns(&self) -> &[usize] {
        &self.suffix
    }

    /// The table's columns.
    pub fn columns(&self) -> &[CodecColumn] {
        &self.columns
    }

    /// The key columns (table positions) of a point lookup through this
    /// index: `Some` for a public unique index whose entries carry the
    /// whole primary key in their value (no key column is part of it).
    pub fn point_lookup_columns(&self) -> Option<Vec<usize>> {
        let whole_pk_in_value = self.suffix.len() == self.pk_len;
        (self.desc.unique && self.desc.state == IndexState::Public && whole_pk_in_value)
            .then(|| self.keys.iter().map(|(p, _)| *p).collect())
    }

    /// Whether index scans read this index: it is public and its entries
    /// carry the whole primary key in their pk suffix (no key column is a
    /// primary-key column).
    pub fn scannable(&self) -> bool {
        self.desc.state == IndexState::Public && self.suffix.len() == self.pk_len
    }

    /// The primary key of the row the entry `key` -> `value` of a
    /// [`IndexCodec::scannable`] index points to: `row_prefix` (the
    /// primary index's) followed by the entry's pk suffix.
    pub fn row_key(&self, row_prefix: &[u8], key: &[u8], value: &[u8]) -> SqlResult<Vec<u8>> {
        let corrupt =
            || SqlError::internal(format!("corrupt entry of index \"{}\"", self.desc.name));
        let in_value = pk_suffix_in(value).ok_or_else(corrupt)?;
        let suffix = if !in_value.is_empty() {
            in_value
        } else {
            let mut k = key
                .strip_prefix(self.prefix.as_slice())
                .ok_or_else(corrupt)?;
            for &(p, descending) in &self.keys {
                let (&first, rest) = k.split_first().ok_or_else(corrupt)?;
                k = rest;
                let tag = if descending { !first } else { first };
                if tag == TAG_NULL {
                    continue;
                }
                if descending {
                    let plain: Vec<u8> = k.iter().map(|b| !b).collect();
                    let mut r = plain.as_slice();
                    skip_key(&mut r, self.columns[p].ty)?;
                    k = &k[plain.len() - r.len()..];
                } else {
                    skip_key(&mut k, self.columns[p].ty)?;
                }
            }
            k
        };
        if suffix.is_empty() {
            return Err(corrupt());
        }
        let mut out = Vec::with_capacity(row_prefix.len() + suffix.len());
        out.extend_from_slice(row_prefix);
        out.extend_from_slice(suffix);
        Ok(out)
    }

    /// Whether a transaction reading at `snapshot` may read the index: its
    /// entries are complete at that snapshot.
    pub fn readable_at(&self, snapshot: holo_txn_types::Timestamp) -> bool {
        self.desc
            .readable_from
            .is_none_or(|t| snapshot.into_inner() > t)
    }

    /// The entry of row `i`; `readers` cover every table column.
    pub fn entry(&self, readers: &[ColumnReader<'_>], i: usize) -> IndexEntry {
        let mut key = Vec::with_capacity(self.prefix.len() + 24);
        key.extend_from_slice(&self.prefix);
        let mut has_null = false;
        for &(p, descending) in &self.keys {
            let start = key.len();
            let r = &readers[p];
            if r.is_null(i) {
                has_null = true;
                key.push(TAG_NULL);
            } else {
                key.push(TAG_VALUE);
                r.write_key(i, &mut key);
            }
            if descending {
                key[start..].iter_mut().for_each(|b| *b = !*b);
            }
        }
        let mut suffix = Vec::with_capacity(16);
        for &p in &self.suffix {
            // Primary-key columns are never NULL.
            suffix.push(TAG_VALUE);
            readers[p].write_key(i, &mut suffix);
        }
        let unique = self.desc.unique && !has_null;
        let mut value = Vec::with_capacity(8 + suffix.len());
        value.push(INDEX_VALUE_V1);
        if unique {
            put_uvarint(&mut value, suffix.len() as u64);
            value.extend_from_slice(&suffix);
        } else {
            put_uvarint(&mut value, 0);
            key.extend_from_slice(&suffix);
        }
        for &p in &self.include {
            put_field(&mut value, &self.columns[p], &readers[p], i);
        }
        IndexEntry { key, value, unique }
    }

    /// Renders the key columns of `key` as PostgreSQL does in a unique
    /// violation's detail: `(a, b)=(1, x)`. `None` when `key` is not one of
    /// this index's keys.
    pub fn describe_key(&self, key: &[u8]) -> Option<String> {
        use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
        let mut k = key.strip_prefix(self.prefix.as_slice())?;
        let mut names = Vec::new();
        let mut values = Vec::new();
        for &(p, descending) in &self.keys {
            let col = &self.columns[p];
            names.push(col.name.clone());
            // A DESC element is decoded from its complement.
            let plain: Vec<u8> = if descending {
                k.iter().map(|b| !b).collect()
            } else {
                k.to_vec()
            };
            let mut rest = plain.as_slice();
            let (&tag, after_tag) = rest.split_first()?;
            rest = after_tag;
            if tag == TAG_NULL {
                values.push("null".to_string());
            } else {
                let mut b = ColumnBuilder::new(col.ty, 1);
                b.append_key(&mut rest).ok()?;
                let array = b.finish().ok()?;
                let fmt =
                    ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default()).ok()?;
                values.push(fmt.value(0).to_string());
            }
            let used = plain.len() - rest.len();
            k = &k[used..];
        }
        Some(format!("({})=({})", names.join(", "), values.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray};

    use super::*;
    use crate::catalog::descriptor::{
        ColumnDescriptor, DESCRIPTOR_FORMAT, IndexColumnDescriptor, PrimaryKeyDescriptor,
    };
    use crate::codec::row::RowCodec;
    use crate::types::SqlType;

    fn column(id: u32, name: &str, ty: SqlType) -> ColumnDescriptor {
        ColumnDescriptor {
            id,
            name: name.into(),
            ty,
            nullable: id != 1,
            default: None,
            missing: None,
            validating_not_null: false,
        }
    }

    /// `t (id BIGINT PRIMARY KEY, a INT, b TEXT)` with one index.
    fn codec(columns: &[(u32, bool)], unique: bool) -> IndexCodec {
        let index = IndexDescriptor {
            id: 2,
            name: "t_idx".into(),
            columns: columns
                .iter()
                .map(|&(id, descending)| IndexColumnDescriptor { id, descending })
                .collect(),
            include_ids: Vec::new(),
            unique,
            constraint: false,
            state: IndexState::Public,
            readable_from: None,
        };
        let table = TableDescriptor {
            format: DESCRIPTOR_FORMAT,
            id: 100,
            name: "t".into(),
            parent_id: 2,
            version: 1,
            hidden_columns: vec![],
            columns: vec![
                column(1, "id", SqlType::BigInt),
                column(2, "a", SqlType::Integer),
                column(3, "b", SqlType::Text),
            ],
            primary_key: PrimaryKeyDescriptor {
                name: "t_pkey".into(),
                column_ids: vec![1],
            },
            checks: Vec::new(),
            indexes: vec![index.clone()],
            next_column_id: 4,
            foreign_keys: Vec::new(),
            next_index_id: 3,
        };
        let rows = RowCodec::new(&table).unwrap();
        IndexCodec::new(&table, &index, rows.columns()).unwrap()
    }

    fn entries(codec: &IndexCodec, a: Vec<Option<i32>>) -> Vec<IndexEntry> {
        let n = a.len();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(1..=n as i64)),
            Arc::new(Int32Array::from(a)),
            Arc::new(StringArray::from(vec![Some("x"); n])),
        ];
        let types = [SqlType::BigInt, SqlType::Integer, SqlType::Text];
        let readers: Vec<ColumnReader<'_>> = columns
            .iter()
            .zip(types)
            .map(|(c, t)| ColumnReader::new(c, t).unwrap())
            .collect();
        (0..n).map(|i| codec.entry(&readers, i)).collect()
    }

    #[test]
    fn descending_keys_sort_in_reverse_with_nulls_first() {
        let asc = entries(&codec(&[(2, false)], false), vec![Some(-5), Some(7), None]);
        assert!(asc[0].key < asc[1].key && asc[1].key < asc[2].key);
        let desc = entries(&codec(&[(2, true)], false), vec![Some(-5), Some(7), None]);
        assert!(desc[2].key < desc[1].key && desc[1].key < desc[0].key);
        let c = codec(&[(2, true)], false);
        assert_eq!(c.describe_key(&desc[1].key).as_deref(), Some("(a)=(7)"));
        assert_eq!(c.describe_key(&desc[2].key).as_deref(), Some("(a)=(null)"));
    }

    #[test]
    fn unique_entries_key_on_values_unless_a_value_is_null() {
        let c = codec(&[(2, false), (3, false)], true);
        let e = entries(&c, vec![Some(1), Some(1), None, None]);
        // Two rows with one value: one key, the row in the value.
        assert!(e[0].unique && e[1].unique);
        assert_eq!(e[0].key, e[1].key);
        assert_ne!(e[0].value, e[1].value);
        // NULLs: the key carries the row, so they never collide.
        assert!(!e[2].unique && !e[3].unique);
        assert_ne!(e[2].key, e[3].key);
        assert_eq!(c.describe_key(&e[0].key).as_deref(), Some("(a, b)=(1, x)"));
    }

    #[test]
    fn every_entry_shape_leads_back_to_its_row() {
        let row_prefix = crate::codec::key::index_prefix(100, 1);
        for (columns, unique) in [
            (vec![(2, false)], false),
            (vec![(2, true), (3, true)], false),
            (vec![(3, true), (2, false)], true),
        ] {
            let c = codec(&columns, unique);
            assert!(c.scannable());
            for (i, e) in entries(&c, vec![Some(3), None, Some(-1)])
                .iter()
                .enumerate()
            {
                let key = c.row_key(&row_prefix, &e.key, &e.value).unwrap();
                let mut want = row_prefix.clone();
                want.push(TAG_VALUE);
                want.extend_from_slice(&(((i as i64) + 1) as u64 ^ (1 << 63)).to_be_bytes());
                assert_eq!(key, want, "{columns:?} unique={unique} row {i}");
            }
        }
        // An index on a primary-key column is not scanned.
        assert!(!codec(&[(1, false)], false).scannable());
    }
}
