//! The rows of `pg_class`, `pg_attribute`, `pg_index` and `pg_constraint`
//! for HoloFusion's tables, indexes and constraints. `pg_class` and
//! `pg_attribute` keep datafusion-pg-catalog's rows for its own relations
//! and replace those of `public` (whose oids it numbers per process) with
//! ours; `pg_index` and `pg_constraint` hold ours alone.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::{concat_batches, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion_pg_catalog::pg_catalog::oid_field::{kind, oid_field};

use super::objects::{Kind, constraints, index_oid, primary_index, table_oid};
use crate::catalog::TableEntry;
use crate::catalog::descriptor::{FkAction, IndexDescriptor, IndexState};
use crate::types::SqlType;

/// Owner of every object (PostgreSQL's bootstrap superuser).
const OWNER: i32 = 10;
/// `pg_am` oids: heap tables and btree indexes.
const HEAP_AM: i32 = 2;
const BTREE_AM: i32 = 403;
/// The default collation.
const DEFAULT_COLLATION: i32 = 100;

/// One row: values by column name; columns not named take their default
/// (NULL where allowed, else zero, false or the empty string).
pub(super) type Row = Vec<(&'static str, ScalarValue)>;

fn default_of(field: &Field) -> Result<ScalarValue> {
    let dt = field.data_type();
    if field.is_nullable() {
        return ScalarValue::try_from(dt);
    }
    Ok(match dt {
        DataType::Utf8 => ScalarValue::Utf8(Some(String::new())),
        DataType::Boolean => ScalarValue::Boolean(Some(false)),
        DataType::List(f) => ScalarValue::List(ScalarValue::new_list(&[], f.data_type(), true)),
        other => ScalarValue::new_zero(other)?,
    })
}

/// `rows` as a batch of `schema`.
pub(super) fn batch(schema: &SchemaRef, rows: &[Row]) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            let values = rows
                .iter()
                .map(|row| match row.iter().find(|(n, _)| *n == f.name()) {
                    Some((_, v)) if v.data_type() == *f.data_type() => Ok(v.clone()),
                    Some((_, v)) if v.is_null() => ScalarValue::try_from(f.data_type()),
                    Some((_, v)) => v.cast_to(f.data_type()),
                    None => default_of(f),
                })
                .collect::<Result<Vec<_>>>()?;
            if values.is_empty() {
                return Ok(datafusion::arrow::array::new_empty_array(f.data_type()));
            }
            ScalarValue::iter_to_array(values)
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(Into::into)
}

/// `batches` (of another schema with the same column names and types)
/// as one batch of `schema`, the rows `keep` selects; a column missing
/// there is NULL.
pub(super) fn conform(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    keep: impl Fn(&RecordBatch, usize) -> bool,
) -> Result<RecordBatch> {
    let Some(first) = batches.first() else {
        return Ok(RecordBatch::new_empty(schema.clone()));
    };
    let all = concat_batches(&first.schema(), batches)?;
    let mask: datafusion::arrow::array::BooleanArray =
        (0..all.num_rows()).map(|i| Some(keep(&all, i))).collect();
    let kept = filter_record_batch(&all, &mask)?;
    let columns = schema
        .fields()
        .iter()
        .map(|f| match kept.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => Ok(datafusion::arrow::compute::cast(c, f.data_type())?),
            None => Ok(datafusion::arrow::array::new_null_array(
                f.data_type(),
                kept.num_rows(),
            )),
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(Into::into)
}

/// Int32 column `name` of `batch`, row `i`.
pub(super) fn int32_at(batch: &RecordBatch, name: &str, i: usize) -> Option<i32> {
    let c = batch.column_by_name(name)?;
    let c = c.as_primitive_opt::<Int32Type>()?;
    (!c.is_null(i)).then(|| c.value(i))
}

/// `pg_class` with a `reloptions` column (PostgreSQL has one; clients read
/// it) when `theirs` lacks it.
pub(super) fn class_schema(theirs: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<Field> = theirs.fields().iter().map(|f| f.as_ref().clone()).collect();
    if theirs.field_with_name("reloptions").is_err() {
        fields.push(Field::new(
            "reloptions",
            DataType::new_list(DataType::Utf8, true),
            true,
        ));
    }
    Arc::new(Schema::new(fields))
}

fn i32v(v: i32) -> ScalarValue {
    ScalarValue::Int32(Some(v))
}

fn i16v(v: usize) -> ScalarValue {
    ScalarValue::Int16(Some(v as i16))
}

fn text(v: &str) -> ScalarValue {
    ScalarValue::Utf8(Some(v.to_string()))
}

fn boolv(v: bool) -> ScalarValue {
    ScalarValue::Boolean(Some(v))
}

fn i16_list(values: impl IntoIterator<Item = usize>) -> ScalarValue {
    let items: Vec<ScalarValue> = values.into_iter().map(i16v).collect();
    ScalarValue::List(ScalarValue::new_list(&items, &DataType::Int16, true))
}

fn i32_list(values: impl IntoIterator<Item = i32>) -> ScalarValue {
    let items: Vec<ScalarValue> = values.into_iter().map(i32v).collect();
    ScalarValue::List(ScalarValue::new_list(&items, &DataType::Int32, true))
}

/// `attnum` of column `id` of `entry`: its position among the visible
/// columns, from 1 (what `indkey` and `conkey` hold too).
fn attnum(entry: &TableEntry, id: u32) -> usize {
    entry
        .desc
        .columns
        .iter()
        .position(|c| c.id == id)
        .map_or(0, |p| p + 1)
}

/// The indexes PostgreSQL would list for `entry`: the primary index, then
/// every secondary index writers maintain fully (an index still being
/// built shows as not valid).
fn listed_indexes(entry: &TableEntry) -> Vec<IndexDescriptor> {
    let mut out = vec![primary_index(&entry.desc)];
    out.extend(
        entry
            .desc
            .indexes
            .iter()
            .filter(|i| i.state != IndexState::DeleteOnly)
            .cloned(),
    );
    out
}

/// `pg_class` rows of `entry` and its indexes, in namespace `namespace`.
pub(super) fn class_rows(entry: &TableEntry, namespace: i32) -> Vec<Row> {
    let desc = &entry.desc;
    let base = |oid: i32, name: &str| -> Row {
        vec![
            ("oid", i32v(oid)),
            ("relname", text(name)),
            ("relnamespace", i32v(namespace)),
            ("relowner", i32v(OWNER)),
            ("relfilenode", i32v(oid)),
            ("relpersistence", text("p")),
            ("relispopulated", boolv(true)),
            ("relreplident", text("d")),
        ]
    };
    let mut table = base(table_oid(desc.id), &desc.name);
    let tuples = entry.stats.as_ref().map_or(-1.0, |s| s.row_count as f64);
    table.extend([
        ("relam", i32v(HEAP_AM)),
        ("relkind", text("r")),
        ("reltuples", ScalarValue::Float64(Some(tuples))),
        ("relhasindex", boolv(true)),
        ("relnatts", i16v(desc.columns.len())),
        ("relchecks", i16v(desc.checks.len())),
        ("relhastriggers", boolv(!entry.links.is_empty())),
    ]);
    let mut rows = vec![table];
    for index in listed_indexes(entry) {
        let mut row = base(index_oid(desc.id, index.id), &index.name);
        row.extend([
            ("relam", i32v(BTREE_AM)),
            ("relkind", text("i")),
            ("reltuples", ScalarValue::Float64(Some(tuples))),
            (
                "relnatts",
                i16v(index.columns.len() + index.include_ids.len()),
            ),
        ]);
        rows.push(row);
    }
    rows
}

/// PostgreSQL's type oid, `atttypmod`, length and alignment of `ty`.
fn pg_type(ty: SqlType) -> (i32, i32, i16, &'static str) {
    match ty {
        SqlType::Boolean => (16, -1, 1, "c"),
        SqlType::SmallInt => (21, -1, 2, "s"),
        SqlType::Integer => (23, -1, 4, "i"),
        SqlType::BigInt => (20, -1, 8, "d"),
        SqlType::Real => (700, -1, 4, "i"),
        SqlType::Double => (701, -1, 8, "d"),
        SqlType::Numeric { precision, scale } => (
            1700,
            ((i32::from(precision) << 16) | i32::from(scale as u8)) + 4,
            -1,
            "i",
        ),
        SqlType::Text => (25, -1, -1, "i"),
        SqlType::Varchar { max_len } => (1043, max_len as i32 + 4, -1, "i"),
        SqlType::Bytea => (17, -1, -1, "i"),
        SqlType::Date => (1082, -1, 4, "i"),
        SqlType::Timestamp => (1114, -1, 8, "d"),
        SqlType::TimestampTz => (1184, -1, 8, "d"),
    }
}

/// `pg_attribute` rows of `entry`'s columns, then of its indexes' columns
/// (an index is a relation of its own, numbered from 1).
pub(super) fn attribute_rows(entry: &TableEntry) -> Vec<Row> {
    let desc = &entry.desc;
    let mut rows = column_rows(table_oid(desc.id), desc.columns.iter().collect());
    for index in listed_indexes(entry) {
        let columns = index
            .columns
            .iter()
            .map(|c| c.id)
            .chain(index.include_ids.iter().copied())
            .filter_map(|id| desc.column_by_id(id))
            .collect();
        rows.extend(column_rows(index_oid(desc.id, index.id), columns));
    }
    rows
}

/// `pg_attribute` rows of `columns` of relation `rel`.
fn column_rows(rel: i32, columns: Vec<&crate::catalog::descriptor::ColumnDescriptor>) -> Vec<Row> {
    columns
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let (typid, typmod, len, align) = pg_type(c.ty);
            let collation = match c.ty {
                SqlType::Text | SqlType::Varchar { .. } => DEFAULT_COLLATION,
                _ => 0,
            };
            vec![
                ("attrelid", i32v(rel)),
                ("attname", text(&c.name)),
                ("atttypid", i32v(typid)),
                ("attstattarget", i32v(-1)),
                ("attlen", ScalarValue::Int16(Some(len))),
                ("attnum", i16v(i + 1)),
                ("attcacheoff", i32v(-1)),
                ("atttypmod", i32v(typmod)),
                ("attbyval", boolv(len > 0 && len <= 8)),
                ("attalign", text(align)),
                ("attstorage", text(if len > 0 { "p" } else { "x" })),
                ("attnotnull", boolv(!c.nullable)),
                ("atthasdef", boolv(c.default.is_some())),
                ("atthasmissing", boolv(c.missing.is_some())),
                ("attislocal", boolv(true)),
                ("attcollation", i32v(collation)),
            ]
        })
        .collect()
}

/// The schema of `pg_index`.
pub(super) fn index_schema() -> SchemaRef {
    let b = |n: &str| Field::new(n, DataType::Boolean, false);
    let list = |n: &str, t: DataType| Field::new(n, DataType::new_list(t, true), false);
    Arc::new(Schema::new(vec![
        oid_field("indexrelid", kind::OID, false),
        oid_field("indrelid", kind::OID, false),
        Field::new("indnatts", DataType::Int16, false),
        Field::new("indnkeyatts", DataType::Int16, false),
        b("indisunique"),
        b("indnullsnotdistinct"),
        b("indisprimary"),
        b("indisexclusion"),
        b("indimmediate"),
        b("indisclustered"),
        b("indisvalid"),
        b("indcheckxmin"),
        b("indisready"),
        b("indislive"),
        b("indisreplident"),
        list("indkey", DataType::Int16),
        list("indcollation", DataType::Int32),
        list("indclass", DataType::Int32),
        // int2vector on the wire is its text form, "0 3".
        Field::new("indoption", DataType::Utf8, false),
        Field::new("indexprs", DataType::Utf8, true),
        Field::new("indpred", DataType::Utf8, true),
    ]))
}

/// The default btree operator class of `ty` (`pg_opclass`).
fn opclass(ty: SqlType) -> i32 {
    match ty {
        SqlType::Boolean => 424,
        SqlType::SmallInt => 1976,
        SqlType::Integer => 1978,
        SqlType::BigInt => 3124,
        SqlType::Real => 1970,
        SqlType::Double => 1971,
        SqlType::Numeric { .. } => 3125,
        SqlType::Text | SqlType::Varchar { .. } => 3126,
        SqlType::Bytea => 421,
        SqlType::Date => 3122,
        SqlType::Timestamp => 3128,
        SqlType::TimestampTz => 3127,
    }
}

/// `pg_index` rows of `entry`'s indexes.
pub(super) fn index_rows(entry: &TableEntry) -> Vec<Row> {
    let desc = &entry.desc;
    listed_indexes(entry)
        .into_iter()
        .map(|index| {
            let ty = |id: u32| desc.column_by_id(id).map_or(SqlType::Text, |c| c.ty);
            let keys: Vec<usize> = index
                .columns
                .iter()
                .map(|c| attnum(entry, c.id))
                .chain(index.include_ids.iter().map(|&id| attnum(entry, id)))
                .collect();
            let options: Vec<String> = index
                .columns
                .iter()
                // DESC sorts NULLs first (3 = DESC | NULLS FIRST).
                .map(|c| if c.descending { "3" } else { "0" }.to_string())
                .collect();
            let valid = index.state == IndexState::Public;
            vec![
                ("indexrelid", i32v(index_oid(desc.id, index.id))),
                ("indrelid", i32v(table_oid(desc.id))),
                ("indnatts", i16v(keys.len())),
                ("indnkeyatts", i16v(index.columns.len())),
                ("indisunique", boolv(index.unique)),
                (
                    "indisprimary",
                    boolv(index.id == crate::codec::key::PRIMARY_INDEX_ID),
                ),
                ("indimmediate", boolv(true)),
                ("indisvalid", boolv(valid)),
                ("indisready", boolv(true)),
                ("indislive", boolv(true)),
                ("indkey", i16_list(keys)),
                (
                    "indcollation",
                    i32_list(index.columns.iter().map(|c| match ty(c.id) {
                        SqlType::Text | SqlType::Varchar { .. } => DEFAULT_COLLATION,
                        _ => 0,
                    })),
                ),
                (
                    "indclass",
                    i32_list(index.columns.iter().map(|c| opclass(ty(c.id)))),
                ),
                ("indoption", text(&options.join(" "))),
            ]
        })
        .collect()
}

/// The schema of `pg_constraint`.
pub(super) fn constraint_schema() -> SchemaRef {
    let s = |n: &str| Field::new(n, DataType::Utf8, false);
    let b = |n: &str| Field::new(n, DataType::Boolean, false);
    let list = |n: &str, t: DataType| Field::new(n, DataType::new_list(t, true), true);
    Arc::new(Schema::new(vec![
        oid_field("oid", kind::OID, false),
        s("conname"),
        oid_field("connamespace", kind::OID, false),
        s("contype"),
        b("condeferrable"),
        b("condeferred"),
        b("convalidated"),
        oid_field("conrelid", kind::OID, false),
        oid_field("contypid", kind::OID, false),
        oid_field("conindid", kind::OID, false),
        oid_field("conparentid", kind::OID, false),
        oid_field("confrelid", kind::OID, false),
        s("confupdtype"),
        s("confdeltype"),
        s("confmatchtype"),
        b("conislocal"),
        Field::new("coninhcount", DataType::Int32, false),
        b("connoinherit"),
        list("conkey", DataType::Int16),
        list("confkey", DataType::Int16),
        list("conpfeqop", DataType::Int32),
        list("conppeqop", DataType::Int32),
        list("conffeqop", DataType::Int32),
        list("confdelsetcols", DataType::Int16),
        list("conexclop", DataType::Int32),
        Field::new("conbin", DataType::Utf8, true),
    ]))
}

/// `pg_constraint.confupdtype` / `confdeltype` of `a`.
fn action_letter(a: FkAction) -> &'static str {
    match a {
        FkAction::NoAction => "a",
        FkAction::Restrict => "r",
        FkAction::Cascade => "c",
        FkAction::SetNull => "n",
        FkAction::SetDefault => "d",
    }
}

/// `pg_constraint` rows of `entry`'s constraints; `parent` finds the
/// referenced table of a foreign key.
pub(super) fn constraint_rows(
    entry: &TableEntry,
    namespace: i32,
    parent: impl Fn(u32) -> Option<Arc<TableEntry>>,
) -> Vec<Row> {
    let desc = &entry.desc;
    constraints(desc)
        .into_iter()
        .filter_map(|c| {
            let mut row: Row = vec![
                ("oid", i32v(c.oid)),
                ("conname", text(&c.name)),
                ("connamespace", i32v(namespace)),
                ("contype", text(c.kind.letter())),
                ("convalidated", boolv(true)),
                ("conrelid", i32v(table_oid(desc.id))),
                ("confupdtype", text(" ")),
                ("confdeltype", text(" ")),
                ("confmatchtype", text(" ")),
                ("conislocal", boolv(true)),
            ];
            match c.kind {
                Kind::PrimaryKey | Kind::Unique => {
                    let index = super::objects::index(desc, c.k as u16)?;
                    row.push(("conindid", i32v(index_oid(desc.id, index.id))));
                    row.push(("connoinherit", boolv(true)));
                    let keys = index.columns.iter().map(|k| attnum(entry, k.id));
                    row.push(("conkey", i16_list(keys)));
                }
                Kind::Check => {
                    let check = desc.checks.get((c.k - 0x800) as usize)?;
                    let cols = crate::ddl::check_columns(&check.expr);
                    let keys = desc
                        .columns
                        .iter()
                        .enumerate()
                        .filter(|(_, col)| cols.contains(&col.name))
                        .map(|(i, _)| i + 1);
                    row.push(("conkey", i16_list(keys)));
                    row.push(("conbin", text(&check.expr)));
                    row.push(("convalidated", boolv(check.validated)));
                }
                Kind::ForeignKey => {
                    let fk = desc.foreign_keys.get((c.k - 0xC00) as usize)?;
                    let parent = if fk.parent_id == desc.id {
                        None
                    } else {
                        Some(parent(fk.parent_id)?)
                    };
                    let parent = parent.as_deref().unwrap_or(entry);
                    let keys = fk.column_ids.iter().map(|&id| attnum(entry, id));
                    let fkeys = fk.parent_column_ids.iter().map(|&id| attnum(parent, id));
                    row.extend([
                        ("conkey", i16_list(keys)),
                        ("confkey", i16_list(fkeys)),
                        ("confrelid", i32v(table_oid(fk.parent_id))),
                        (
                            "conindid",
                            i32v(index_oid(fk.parent_id, fk.parent_index_id)),
                        ),
                        ("confupdtype", text(action_letter(fk.on_update))),
                        ("confdeltype", text(action_letter(fk.on_delete))),
                        ("confmatchtype", text("s")),
                        ("convalidated", boolv(fk.validated)),
                    ]);
                }
            }
            Some(row)
        })
        .collect()
}

/// The rows of `batch` whose Int32 column `name` is not in `drop`.
pub(super) fn without(name: &'static str, drop: Vec<i32>) -> impl Fn(&RecordBatch, usize) -> bool {
    move |b, i| int32_at(b, name, i).is_none_or(|v| !drop.contains(&v))
}

/// An error of these tables as DataFusion's.
pub(super) fn internal(what: &str) -> DataFusionError {
    DataFusionError::Internal(format!("pg_catalog: {what}"))
}
