//! INSERT, UPDATE and DELETE: DataFusion plans the rows to write, HoloFusion
//! validates them (types, NOT NULL, lengths, CHECK) and buffers the writes in
//! the transaction, all or nothing per statement.
//!
//! The statement's input plan is executed here rather than through
//! DataFusion's DML hooks: the input reads the transaction's snapshot, and
//! an input that optimizes to nothing (`WHERE 1 = 2`) writes nothing.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Decimal128Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema};
use datafusion::execution::SessionState;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{
    DmlStatement, Expr, ExprSchemable, LogicalPlan, Projection, Values, WriteOp,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execute_stream;
use futures::StreamExt;
use holo_kv::Transaction;
use holo_txn_types::MutationOp;

use super::fk_actions::Cascade;
use super::foreign_keys::ParentChange;
use super::row_writes::{Deferred, Write, delete_writes, insert_writes, update_writes};
use crate::catalog::relation_missing;
use crate::catalog::{Catalog, TableEntry};
use crate::codec::column::{ColumnReader, conform};
use crate::error::{SqlError, SqlResult, sqlstate};
use crate::planner::PlanContext;
use crate::types::SqlType;

const OLD_KEY_PREFIX: &str = "__holo_old_";

/// The table a DML statement targets: the version its plan was made from
/// (the statement's pinned schema, which its input rows follow), or the
/// cached one for a plan made elsewhere.
pub fn target_table(catalog: &Catalog, dml: &DmlStatement) -> SqlResult<Arc<TableEntry>> {
    if let Ok(provider) = datafusion::datasource::source_as_provider(&dml.target)
        && let Some(table) = <dyn datafusion::catalog::TableProvider>::downcast_ref::<
            crate::catalog::provider::HoloTable,
        >(provider.as_ref())
    {
        return Ok(table.entry.clone());
    }
    let name = dml.table_name.table();
    catalog.table(name).ok_or_else(|| relation_missing(name))
}

/// The types of the values assigned to each table column before DataFusion's
/// implicit casts: from the statement's projection and, for VALUES lists,
/// from every row.
fn assignment_sources(input: &LogicalPlan, entry: &TableEntry) -> SqlResult<Vec<Vec<DataType>>> {
    let mut out = vec![Vec::new(); entry.desc.columns.len()];
    let LogicalPlan::Projection(p) = input else {
        return Ok(out);
    };
    let mut below = p.input.as_ref();
    while let LogicalPlan::SubqueryAlias(a) = below {
        below = a.input.as_ref();
    }
    let schema = p.input.schema();
    for (j, expr) in p.expr.iter().enumerate().take(out.len()) {
        let mut inner = match expr {
            Expr::Alias(a) => a.expr.as_ref(),
            other => other,
        };
        if let Expr::Cast(c) = inner {
            out[j].push(c.expr.get_type(schema)?);
            inner = c.expr.as_ref();
        } else if let Expr::TryCast(c) = inner {
            out[j].push(c.expr.get_type(schema)?);
            inner = c.expr.as_ref();
        }
        if let (Expr::Column(col), LogicalPlan::Values(values)) = (inner, below)
            && let Some(idx) = values
                .schema
                .iter()
                .position(|(_, f)| f.name() == &col.name)
        {
            let empty = DFSchema::empty();
            for row in &values.values {
                if let Some(Expr::Cast(c)) = row.get(idx) {
                    out[j].push(c.expr.get_type(&empty)?);
                } else if let Some(Expr::TryCast(c)) = row.get(idx) {
                    out[j].push(c.expr.get_type(&empty)?);
                }
            }
        }
    }
    Ok(out)
}

/// Checks that every assigned value's type may be stored in its column
/// without an explicit cast (PostgreSQL's assignment rules, 42804). Returns,
/// per column, whether text was assigned (BYTEA then parses PostgreSQL's
/// text input format).
pub(crate) fn check_assignment_types(
    input: &LogicalPlan,
    entry: &TableEntry,
) -> SqlResult<Vec<bool>> {
    let sources = assignment_sources(input, entry)?;
    let mut text = vec![false; sources.len()];
    for ((col, types), text) in entry.desc.columns.iter().zip(&sources).zip(text.iter_mut()) {
        for source in types {
            if !col.ty.accepts_assignment_from(source) {
                return Err(SqlError::new(
                    sqlstate::DATATYPE_MISMATCH,
                    format!(
                        "column \"{}\" is of type {} but expression is of type {}",
                        col.name,
                        col.ty,
                        pg_type_name(source)
                    ),
                )
                .with_hint("You will need to rewrite or cast the expression."));
            }
            *text |= matches!(
                source,
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
            );
        }
    }
    Ok(text)
}

fn pg_type_name(t: &DataType) -> String {
    match t {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 | DataType::Int16 => "smallint".into(),
        DataType::Int32 => "integer".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Decimal128(_, _) | DataType::Decimal256(_, _) => "numeric".into(),
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => "text".into(),
        DataType::Binary | DataType::BinaryView | DataType::LargeBinary => "bytea".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, None) => "timestamp without time zone".into(),
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone".into(),
        other => other.to_string().to_lowercase(),
    }
}

/// Validates rows about to be written and conforms them to the column types.
pub(crate) struct RowValidator {
    entry: Arc<TableEntry>,
    checks: Vec<(String, Arc<dyn PhysicalExpr>)>,
    text_sources: Vec<bool>,
}

impl RowValidator {
    pub(crate) fn new(
        state: &SessionState,
        entry: Arc<TableEntry>,
        text_sources: Vec<bool>,
    ) -> SqlResult<RowValidator> {
        let df_schema = DFSchema::try_from(entry.schema.as_ref().clone())?;
        let mut checks = Vec::with_capacity(entry.desc.checks.len());
        for check in &entry.desc.checks {
            let expr = state.create_logical_expr(&check.expr, &df_schema)?;
            let physical = state.create_physical_expr(expr, &df_schema)?;
            checks.push((check.name.clone(), physical));
        }
        Ok(RowValidator {
            entry,
            checks,
            text_sources,
        })
    }

    /// Conforms `columns` (table order) and checks every constraint.
    pub(crate) fn validate(&self, columns: &[ArrayRef]) -> SqlResult<Vec<ArrayRef>> {
        let table = &self.entry.desc.name;
        let mut out = Vec::with_capacity(columns.len());
        for (i, (array, col)) in columns.iter().zip(&self.entry.desc.columns).enumerate() {
            let mut array = conform(array, col.ty)?;
            if col.ty == SqlType::Bytea && self.text_sources.get(i).copied().unwrap_or(false) {
                array = bytea_from_text(&array)?;
            }
            if (!col.nullable || col.validating_not_null) && array.null_count() > 0 {
                return Err(SqlError::new(
                    sqlstate::NOT_NULL_VIOLATION,
                    format!(
                        "null value in column \"{}\" of relation \"{table}\" violates not-null constraint",
                        col.name
                    ),
                ));
            }
            match col.ty {
                SqlType::Varchar { max_len } => {
                    let reader = ColumnReader::new(&array, col.ty)?;
                    for i in 0..array.len() {
                        if reader.char_len(i).is_some_and(|n| n > max_len as usize) {
                            return Err(SqlError::new(
                                sqlstate::STRING_DATA_RIGHT_TRUNCATION,
                                format!("value too long for type character varying({max_len})"),
                            ));
                        }
                    }
                }
                SqlType::Numeric { precision, .. } => {
                    if let Some(d) = array.as_any().downcast_ref::<Decimal128Array>()
                        && d.validate_decimal_precision(precision).is_err()
                    {
                        return Err(SqlError::new(
                            sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
                            format!("numeric field overflow in column \"{}\"", col.name),
                        )
                        .with_detail(format!(
                            "A field with precision {precision} cannot hold this value."
                        )));
                    }
                }
                SqlType::Real | SqlType::Double => {}
                _ => {}
            }
            out.push(array);
        }
        if !self.checks.is_empty() {
            let batch = RecordBatch::try_new(self.entry.schema.clone(), out.clone())
                .map_err(|e| SqlError::internal(format!("building check batch: {e}")))?;
            for (name, expr) in &self.checks {
                if check_fails(expr.as_ref(), &batch)? {
                    return Err(SqlError::new(
                        sqlstate::CHECK_VIOLATION,
                        format!(
                            "new row for relation \"{table}\" violates check constraint \"{name}\""
                        ),
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// Re-reads BYTEA values that arrived as text in PostgreSQL's input format:
/// `\\x` followed by hex digits, or the escape format (`\\\\` and `\\ooo`).
fn bytea_from_text(array: &ArrayRef) -> SqlResult<ArrayRef> {
    use datafusion::arrow::array::{BinaryArray, BinaryBuilder};
    let bin = array
        .as_any()
        .downcast_ref::<BinaryArray>()
        .ok_or_else(|| SqlError::internal("bytea column is not binary"))?;
    let invalid = || {
        SqlError::new(
            sqlstate::INVALID_TEXT_REPRESENTATION,
            "invalid input syntax for type bytea",
        )
    };
    let mut out = BinaryBuilder::with_capacity(bin.len(), bin.value_data().len());
    for v in bin.iter() {
        let Some(v) = v else {
            out.append_null();
            continue;
        };
        if let Some(hex) = v.strip_prefix(b"\\x") {
            let digits: Vec<u8> = hex
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            if !digits.len().is_multiple_of(2) {
                return Err(invalid());
            }
            let mut bytes = Vec::with_capacity(digits.len() / 2);
            for pair in digits.chunks(2) {
                let s = std::str::from_utf8(pair).map_err(|_| invalid())?;
                bytes.push(u8::from_str_radix(s, 16).map_err(|_| invalid())?);
            }
            out.append_value(bytes);
        } else {
            let mut bytes = Vec::with_capacity(v.len());
            let mut i = 0;
            while i < v.len() {
                if v[i] != b'\\' {
                    bytes.push(v[i]);
                    i += 1;
                } else if v.get(i + 1) == Some(&b'\\') {
                    bytes.push(b'\\');
                    i += 2;
                } else {
                    let oct = v.get(i + 1..i + 4).ok_or_else(invalid)?;
                    let s = std::str::from_utf8(oct).map_err(|_| invalid())?;
                    bytes.push(u8::from_str_radix(s, 8).map_err(|_| invalid())?);
                    i += 4;
                }
            }
            out.append_value(bytes);
        }
    }
    Ok(Arc::new(out.finish()))
}

/// Adds the target rows' current values of [`TableEntry::old_row_columns`] to an
/// UPDATE's projection, so a key change deletes the old row and changed
/// index entries are replaced.
fn with_old_rows(input: &LogicalPlan, entry: &TableEntry) -> SqlResult<LogicalPlan> {
    let LogicalPlan::Projection(p) = input else {
        return Err(SqlError::internal("UPDATE input is not a projection"));
    };
    let mut exprs = p.expr.clone();
    let schema = p.input.schema();
    for (i, &c) in entry.old_row_columns.iter().enumerate() {
        let name = &entry.desc.columns[c].name;
        let (qualifier, field) = schema
            .qualified_field_with_unqualified_name(name)
            .map_err(SqlError::from)?;
        exprs.push(
            Expr::Column(Column::from((qualifier, field))).alias(format!("{OLD_KEY_PREFIX}{i}")),
        );
    }
    Ok(LogicalPlan::Projection(Projection::try_new(
        exprs,
        p.input.clone(),
    )?))
}

/// Makes VALUES lists nullable so that a NULL for a NOT NULL column reaches
/// [`RowValidator`] (and fails with 23502) instead of DataFusion's
/// nullability assertion.
fn relax_values_nullability(plan: &LogicalPlan) -> SqlResult<LogicalPlan> {
    let relaxed = plan
        .clone()
        .transform_up(|node| match node {
            LogicalPlan::Values(v) => {
                let fields: Vec<(Option<datafusion::common::TableReference>, Arc<Field>)> = v
                    .schema
                    .iter()
                    .map(|(q, f)| (q.cloned(), Arc::new(f.as_ref().clone().with_nullable(true))))
                    .collect();
                let schema = DFSchema::new_with_metadata(fields, v.schema.metadata().clone())?;
                Ok(Transformed::yes(LogicalPlan::Values(Values {
                    schema: Arc::new(schema),
                    values: v.values,
                })))
            }
            other => Ok(Transformed::yes(other.recompute_schema()?)),
        })?
        .data;
    Ok(relaxed)
}

/// Runs `plan` and hands every batch to `f`.
async fn for_each_batch(
    planning: &PlanContext,
    plan: &LogicalPlan,
    mut f: impl FnMut(RecordBatch) -> SqlResult<()>,
) -> SqlResult<()> {
    let plan = relax_values_nullability(plan)?;
    let physical = planning.physical(&plan).await?;
    let mut stream = execute_stream(physical, planning.state.task_ctx())?;
    while let Some(batch) = stream.next().await {
        f(batch?)?;
        // Large inputs: let the worker's other tasks (Raft among them) run
        // between batches.
        tokio::task::yield_now().await;
    }
    Ok(())
}

/// Whether CHECK expression `expr` is false for a row of `batch` (NULL
/// passes, as in PostgreSQL).
pub(crate) fn check_fails(expr: &dyn PhysicalExpr, batch: &RecordBatch) -> SqlResult<bool> {
    let result = expr.evaluate(batch)?.into_array(batch.num_rows())?;
    let result = result
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| SqlError::internal("CHECK expression is not boolean"))?;
    Ok(result.iter().any(|v| v == Some(false)))
}

/// Executes an INSERT, UPDATE or DELETE inside `txn`, with the actions
/// and checks of the foreign keys it touches; returns the number of rows
/// it wrote (not counting cascades). A statement that fails may leave
/// writes buffered: its transaction is discarded (autocommit) or failed
/// (a block), so they never commit.
/// With `check_now`, inserted keys are checked against the snapshot before
/// the statement returns (PostgreSQL reports duplicates at once inside a
/// transaction block); otherwise the commit that follows checks them.
/// With `returned`, the rows written (new rows; a DELETE's old rows) are
/// added to it, columns in table order, for RETURNING.
pub async fn execute_dml(
    planning: &PlanContext,
    txn: &Transaction,
    catalog: &Catalog,
    dml: &DmlStatement,
    check_now: bool,
    returned: Option<&mut Vec<Vec<ArrayRef>>>,
) -> SqlResult<u64> {
    let (rows, changes) = write_rows(planning, txn, catalog, dml, check_now, returned).await?;
    if let Ok(entry) = target_table(catalog, dml) {
        catalog.note_writes(entry.desc.id, rows);
    }
    if changes.is_empty() {
        return Ok(rows);
    }
    let mut cascade = Cascade::new(planning, txn, changes);
    while let Some(action) = cascade.next().await? {
        let (_, more) = write_rows(planning, txn, catalog, &action, check_now, None).await?;
        cascade.push(more);
    }
    Ok(rows)
}

/// The rows of one INSERT, UPDATE or DELETE, written into `txn` with their
/// references checked; returns how many, and the referenced keys it took
/// away (for [`Cascade`]).
async fn write_rows(
    planning: &PlanContext,
    txn: &Transaction,
    catalog: &Catalog,
    dml: &DmlStatement,
    check_now: bool,
    mut returned: Option<&mut Vec<Vec<ArrayRef>>>,
) -> SqlResult<(u64, Vec<ParentChange>)> {
    let state = planning.state.as_ref();
    let entry = target_table(catalog, dml)?;
    let ncols = entry.desc.columns.len();
    let mut writes: Vec<Write> = Vec::new();
    let mut deferred = Deferred::default();
    let mut rows: u64 = 0;
    match &dml.op {
        WriteOp::Insert(InsertOp::Append) => {
            let text = check_assignment_types(&dml.input, &entry)?;
            let validator = RowValidator::new(state, entry.clone(), text)?;
            for_each_batch(planning, &dml.input, |batch| {
                let columns = validator.validate(batch.columns())?;
                insert_writes(&entry, &columns, &mut writes, &mut deferred)?;
                rows += batch.num_rows() as u64;
                if let Some(out) = returned.as_deref_mut() {
                    out.push(columns);
                }
                Ok(())
            })
            .await?;
        }
        WriteOp::Insert(op) => {
            return Err(SqlError::unsupported(format!(
                "INSERT mode {op} is not supported"
            )));
        }
        WriteOp::Update => {
            let text = check_assignment_types(&dml.input, &entry)?;
            let validator = RowValidator::new(state, entry.clone(), text)?;
            let plan = with_old_rows(&dml.input, &entry)?;
            let mut deletes = Vec::new();
            let mut puts = Vec::new();
            for_each_batch(planning, &plan, |batch| {
                let columns = validator.validate(&batch.columns()[..ncols])?;
                update_writes(
                    &entry,
                    &columns,
                    &batch.columns()[ncols..],
                    &mut deletes,
                    &mut puts,
                    &mut deferred,
                )?;
                rows += batch.num_rows() as u64;
                if let Some(out) = returned.as_deref_mut() {
                    out.push(columns);
                }
                Ok(())
            })
            .await?;
            writes = deletes;
            writes.extend(puts);
        }
        WriteOp::Delete => {
            let schema = dml.input.schema().clone();
            // Where table columns `cols` are in the input's rows.
            let input_positions = |cols: &mut dyn Iterator<Item = usize>| {
                cols.map(|c| {
                    let name = &entry.desc.columns[c].name;
                    schema
                        .iter()
                        .position(|(_, f)| f.name() == name)
                        .ok_or_else(|| SqlError::internal("DELETE input lacks a needed column"))
                })
                .collect::<SqlResult<Vec<_>>>()
            };
            let positions = input_positions(&mut entry.old_row_columns.iter().copied())?;
            // RETURNING: every column of the deleted rows.
            let all = match returned {
                Some(_) => input_positions(&mut (0..ncols))?,
                None => Vec::new(),
            };
            for_each_batch(planning, &dml.input, |batch| {
                let old: Vec<ArrayRef> =
                    positions.iter().map(|&i| batch.column(i).clone()).collect();
                delete_writes(&entry, &old, &mut writes, &mut deferred)?;
                rows += batch.num_rows() as u64;
                if let Some(out) = returned.as_deref_mut() {
                    out.push(all.iter().map(|&i| batch.column(i).clone()).collect());
                }
                Ok(())
            })
            .await?;
            // Deletes only: the order within the statement does not matter.
        }
        other => return Err(SqlError::unsupported(format!("{other} is not supported"))),
    }
    let changes = apply_writes(txn, &entry, writes, deferred, check_now).await?;
    Ok((rows, changes))
}

/// Buffers a statement's writes in `txn`, all or nothing, with the
/// `deferred` ones read first; with `check_now` inserted keys are first
/// checked against the snapshot.
pub(crate) async fn apply_writes(
    txn: &Transaction,
    entry: &TableEntry,
    mut writes: Vec<Write>,
    mut deferred: Deferred,
    check_now: bool,
) -> SqlResult<Vec<ParentChange>> {
    let fk = std::mem::take(&mut deferred.fk);
    if !deferred.is_empty() {
        let (mut first, mut last) = deferred.resolve(txn, entry).await?;
        first.append(&mut writes);
        first.append(&mut last);
        writes = first;
    }
    if check_now {
        // A key the statement itself deletes (a swap) may be inserted again.
        let deleted: std::collections::HashSet<&[u8]> = writes
            .iter()
            .filter(|(_, op)| matches!(op, MutationOp::Delete))
            .map(|(k, _)| k.as_slice())
            .collect();
        for (key, op) in &writes {
            if matches!(op, MutationOp::Insert(_))
                && !deleted.contains(key.as_slice())
                && txn.get(key).await?.is_some()
            {
                return Err(duplicate_key_error(entry, key));
            }
        }
    }
    let applied = if writes.len() > holo_kv::txn::LARGE_PASS {
        holo_kv::blocking(|| txn.apply_statement(writes))
    } else {
        txn.apply_statement(writes)
    };
    applied.map_err(|e| match e {
        holo_kv::KvError::Key(holo_txn_types::KeyError::AlreadyExists { key }) => {
            duplicate_key_error(entry, &key)
        }
        other => SqlError::from(other),
    })?;
    if fk.is_empty() {
        return Ok(Vec::new());
    }
    fk.finish(txn).await
}

/// PostgreSQL's unique-violation error for `key` of `entry`, naming the
/// primary key or unique index the key belongs to.
pub fn duplicate_key_error(entry: &TableEntry, key: &[u8]) -> SqlError {
    let (constraint, detail) = entry.describe_conflict(key);
    let err = SqlError::new(
        sqlstate::UNIQUE_VIOLATION,
        format!("duplicate key value violates unique constraint \"{constraint}\""),
    );
    match detail {
        Some(detail) => err.with_detail(format!("Key {detail} already exists.")),
        None => err,
    }
}
