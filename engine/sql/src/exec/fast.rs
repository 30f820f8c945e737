//! Fast paths: statement shapes HoloFusion runs without DataFusion's
//! optimizer and physical planner, for OLTP latency.
//!
//! - point SELECT: `SELECT cols FROM t WHERE <every key column> = $n|literal`,
//!   where the key is the primary key or a unique index's (then one index
//!   entry is read, and the row it names);
//! - point UPDATE: `UPDATE t SET ... WHERE <every key column> = ...`;
//! - short `INSERT INTO t ... VALUES (...)` lists.
//!
//! Shapes are recognised on the statement's logical plan, which is planned
//! (and cached for prepared statements) once. Anything else takes the general
//! path; both paths share the codecs, validation and write buffering, so the
//! results and errors are the same.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, DFSchemaRef, ParamValues};
use datafusion::datasource::source_as_provider;
use datafusion::execution::SessionState;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator, TableScan, WriteOp};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::scalar::ScalarValue;
use holo_kv::Transaction;

use super::dml::{RowValidator, apply_writes, check_assignment_types};
use super::row_writes::{insert_writes, update_writes};
use crate::catalog::TableEntry;
use crate::catalog::provider::HoloTable;
use crate::codec::column::{ColumnReader, conform};
use crate::codec::key::TAG_VALUE;
use crate::error::{SqlError, SqlResult, sqlstate};

/// Most VALUES rows the INSERT fast path takes.
const MAX_FAST_INSERT_ROWS: usize = 64;

/// Where a key column's value comes from.
#[derive(Debug, Clone)]
pub enum KeyPart {
    /// Bound parameter `$n` (0-based index).
    Param(usize),
    /// A constant.
    Literal(ScalarValue),
}

/// A statement shape with a fast path.
#[derive(Debug, Clone)]
pub enum FastPlan {
    /// Read one row by its whole primary key, or by every key column of a
    /// unique index (`via`, a position in the table's indexes).
    PointSelect {
        /// The table.
        entry: Arc<TableEntry>,
        /// Key values in key order (of the primary key or of `via`).
        key: Vec<KeyPart>,
        /// The unique index the key is of, if not the primary key.
        via: Option<usize>,
        /// Output columns (table column indices).
        projection: Vec<usize>,
        /// Output schema.
        schema: SchemaRef,
    },
    /// Update one row by its whole primary key.
    PointUpdate {
        /// The table.
        entry: Arc<TableEntry>,
        /// Key values in key order.
        key: Vec<KeyPart>,
        /// New value of every column, over the table's columns.
        exprs: Vec<Expr>,
        /// The schema the expressions refer to.
        scan_schema: DFSchemaRef,
        /// Per column: was text assigned (BYTEA input format).
        text_sources: Vec<bool>,
    },
    /// Insert a short VALUES list.
    InsertValues {
        /// The table.
        entry: Arc<TableEntry>,
        /// The INSERT's input plan (projection over VALUES).
        input: LogicalPlan,
        /// Per column: was text assigned.
        text_sources: Vec<bool>,
    },
}

/// What a fast path produced.
#[derive(Debug)]
pub enum FastOutput {
    /// The rows of a SELECT.
    Rows(RecordBatch),
    /// Rows written.
    Written(u64),
}

fn holo_table(scan: &TableScan) -> Option<Arc<TableEntry>> {
    let provider = source_as_provider(&scan.source).ok()?;
    let table = <dyn TableProvider>::downcast_ref::<HoloTable>(provider.as_ref())?;
    Some(table.entry.clone())
}

fn key_literal_ok(lit: &DataType, col: &DataType) -> bool {
    lit == col
        || (lit.is_integer() && col.is_integer())
        || (matches!(
            lit,
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
        ) && col == &DataType::Utf8)
}

/// The key parts of a predicate that fixes every column of `pk` (table
/// positions: the primary key's or a unique index's) by equality, or `None`.
fn point_key(
    entry: &TableEntry,
    scan: &TableScan,
    predicate: &Expr,
    pk: &[usize],
) -> Option<Vec<KeyPart>> {
    let mut parts: Vec<Option<KeyPart>> = vec![None; pk.len()];
    for conjunct in split_conjunction(predicate) {
        let Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) = conjunct
        else {
            return None;
        };
        let (col, other) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), o) | (o, Expr::Column(c)) => (c, o),
            _ => return None,
        };
        if col.relation.as_ref().is_some_and(|r| r != &scan.table_name) {
            return None;
        }
        let pos = pk
            .iter()
            .position(|&i| entry.desc.columns[i].name == col.name)?;
        let col_type = entry.desc.columns[pk[pos]].ty.arrow_type();
        let part = match other {
            Expr::Placeholder(p) => {
                let n: usize = p.id.strip_prefix('$')?.parse().ok()?;
                KeyPart::Param(n.checked_sub(1)?)
            }
            Expr::Literal(v, _) if !v.is_null() && key_literal_ok(&v.data_type(), &col_type) => {
                KeyPart::Literal(v.clone())
            }
            _ => return None,
        };
        if parts[pos].replace(part).is_some() {
            return None;
        }
    }
    parts.into_iter().collect()
}

fn scan_below(plan: &LogicalPlan) -> Option<(&Expr, &TableScan)> {
    let LogicalPlan::Filter(filter) = plan else {
        return None;
    };
    let LogicalPlan::TableScan(scan) = filter.input.as_ref() else {
        return None;
    };
    if !scan.filters.is_empty() || scan.fetch.is_some() || scan.projection.is_some() {
        return None;
    }
    Some((&filter.predicate, scan))
}

impl FastPlan {
    /// The fast path for `plan` (an unoptimized logical plan), if any.
    pub fn detect(plan: &LogicalPlan) -> Option<FastPlan> {
        match plan {
            LogicalPlan::Projection(proj) => {
                let (predicate, scan) = scan_below(&proj.input)?;
                let entry = holo_table(scan)?;
                let (key, via) = point_key(&entry, scan, predicate, entry.codec.pk_indices())
                    .map(|k| (k, None))
                    .or_else(|| {
                        entry.indexes.iter().enumerate().find_map(|(i, index)| {
                            let cols = index.point_lookup_columns()?;
                            Some((point_key(&entry, scan, predicate, &cols)?, Some(i)))
                        })
                    })?;
                let projection = proj
                    .expr
                    .iter()
                    .map(|e| match e {
                        Expr::Column(c) => {
                            entry.desc.columns.iter().position(|col| col.name == c.name)
                        }
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(FastPlan::PointSelect {
                    entry,
                    key,
                    via,
                    projection,
                    schema: Arc::new(proj.schema.as_arrow().clone()),
                })
            }
            LogicalPlan::Dml(dml) => match &dml.op {
                WriteOp::Update => {
                    let LogicalPlan::Projection(proj) = dml.input.as_ref() else {
                        return None;
                    };
                    let (predicate, scan) = scan_below(&proj.input)?;
                    let entry = holo_table(scan)?;
                    if proj.expr.len() != entry.desc.columns.len() {
                        return None;
                    }
                    let key = point_key(&entry, scan, predicate, entry.codec.pk_indices())?;
                    let text_sources = check_assignment_types(&dml.input, &entry).ok()?;
                    let exprs = proj
                        .expr
                        .iter()
                        .map(|e| match e {
                            Expr::Alias(a) => a.expr.as_ref().clone(),
                            other => other.clone(),
                        })
                        .collect::<Vec<_>>();
                    // A referenced key that may change needs the foreign
                    // keys' actions, which run through the general path.
                    let keeps_referenced = entry.links.inbound.iter().all(|l| {
                        l.parent_columns.iter().all(|&p| {
                            matches!(&exprs[p], Expr::Column(c) if c.name == entry.desc.columns[p].name)
                        })
                    });
                    if !keeps_referenced {
                        return None;
                    }
                    if exprs.iter().any(|e| {
                        e.exists(|x| {
                            Ok(matches!(
                                x,
                                Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
                            ))
                        })
                        .unwrap_or(true)
                    }) {
                        return None;
                    }
                    Some(FastPlan::PointUpdate {
                        entry,
                        key,
                        exprs,
                        scan_schema: scan.projected_schema.clone(),
                        text_sources,
                    })
                }
                WriteOp::Insert(InsertOp::Append) => {
                    let LogicalPlan::Projection(proj) = dml.input.as_ref() else {
                        return None;
                    };
                    let mut below = proj.input.as_ref();
                    while let LogicalPlan::SubqueryAlias(a) = below {
                        below = a.input.as_ref();
                    }
                    let LogicalPlan::Values(values) = below else {
                        return None;
                    };
                    if values.values.len() > MAX_FAST_INSERT_ROWS {
                        return None;
                    }
                    let source = source_as_provider(&dml.target).ok()?;
                    let entry = <dyn TableProvider>::downcast_ref::<HoloTable>(source.as_ref())?
                        .entry
                        .clone();
                    let text_sources = check_assignment_types(&dml.input, &entry).ok()?;
                    Some(FastPlan::InsertValues {
                        entry,
                        input: dml.input.as_ref().clone(),
                        text_sources,
                    })
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// The table the plan touches.
    pub fn entry(&self) -> &Arc<TableEntry> {
        match self {
            FastPlan::PointSelect { entry, .. }
            | FastPlan::PointUpdate { entry, .. }
            | FastPlan::InsertValues { entry, .. } => entry,
        }
    }

    /// Whether the plan can run at `snapshot`: a point read through an
    /// index needs the index's entries complete there (otherwise the
    /// statement takes the general path, which reads the table).
    pub fn runs_at(&self, snapshot: holo_txn_types::Timestamp) -> bool {
        match self {
            FastPlan::PointSelect {
                entry,
                via: Some(i),
                ..
            } => entry.indexes[*i].readable_at(snapshot),
            _ => true,
        }
    }

    /// Runs the plan in `txn` with `params` bound.
    pub async fn execute(
        &self,
        state: &SessionState,
        txn: &Transaction,
        params: Option<&ParamValues>,
        check_now: bool,
    ) -> SqlResult<FastOutput> {
        match self {
            FastPlan::PointSelect {
                entry,
                key,
                via,
                projection,
                schema,
            } => {
                let mut decoder = entry.codec.decoder(projection.clone(), schema.clone(), 1);
                let row_key = match via {
                    None => encode_key(entry, key, params)?,
                    Some(i) => {
                        let index = &entry.indexes[*i];
                        if !index.readable_at(txn.start_ts()) {
                            return Err(SqlError::new(
                                sqlstate::SERIALIZATION_FAILURE,
                                format!(
                                    "index \"{}\" was built after this transaction began",
                                    index.desc().name
                                ),
                            )
                            .with_hint("retry the transaction"));
                        }
                        match encode_elements(
                            entry,
                            key,
                            index.key_columns(),
                            index.prefix(),
                            params,
                        )? {
                            Some(k) => match txn.get(&k).await? {
                                Some(entry_value) => Some(index.row_key(
                                    entry.codec.index_prefix(),
                                    &k,
                                    &entry_value,
                                )?),
                                None => None,
                            },
                            None => None,
                        }
                    }
                };
                if let Some(key) = row_key
                    && let Some(value) = txn.get(&key).await?
                {
                    decoder.push(&key, &value)?;
                }
                Ok(FastOutput::Rows(decoder.finish()?))
            }
            FastPlan::PointUpdate {
                entry,
                key,
                exprs,
                scan_schema,
                text_sources,
            } => {
                let Some(key) = encode_key(entry, key, params)? else {
                    return Ok(FastOutput::Written(0));
                };
                let Some(value) = txn.get(&key).await? else {
                    return Ok(FastOutput::Written(0));
                };
                let all: Vec<usize> = (0..entry.desc.columns.len()).collect();
                let mut decoder = entry.codec.decoder(all, entry.schema.clone(), 1);
                decoder.push(&key, &value)?;
                let row = decoder.finish()?;
                let mut new_columns = Vec::with_capacity(exprs.len());
                for expr in exprs {
                    let expr = bind(expr.clone(), params)?;
                    let physical = physical_expr(state, expr, scan_schema)?;
                    new_columns.push(physical.evaluate(&row)?.into_array(1)?);
                }
                let validator = RowValidator::new(state, entry.clone(), text_sources.clone())?;
                let new_columns = validator.validate(&new_columns)?;
                let old: Vec<ArrayRef> = entry
                    .old_row_columns
                    .iter()
                    .map(|&c| row.column(c).clone())
                    .collect();
                let (mut deletes, mut puts) = (Vec::new(), Vec::new());
                let mut deferred = super::row_writes::Deferred::default();
                update_writes(
                    entry,
                    &new_columns,
                    &old,
                    &mut deletes,
                    &mut puts,
                    &mut deferred,
                )?;
                deletes.extend(puts);
                let changes = apply_writes(txn, entry, deletes, deferred, check_now).await?;
                super::foreign_keys::expect_no_changes(&changes)?;
                Ok(FastOutput::Written(1))
            }
            FastPlan::InsertValues {
                entry,
                input,
                text_sources,
            } => {
                let bound = match params {
                    Some(p) => input.clone().with_param_values(p.clone())?,
                    None => input.clone(),
                };
                let columns = evaluate_insert(state, &bound)?;
                let validator = RowValidator::new(state, entry.clone(), text_sources.clone())?;
                let columns = validator.validate(&columns)?;
                let rows = columns.first().map_or(0, |c| c.len());
                let mut writes = Vec::new();
                let mut deferred = super::row_writes::Deferred::default();
                insert_writes(entry, &columns, &mut writes, &mut deferred)?;
                let changes = apply_writes(txn, entry, writes, deferred, check_now).await?;
                super::foreign_keys::expect_no_changes(&changes)?;
                Ok(FastOutput::Written(rows as u64))
            }
        }
    }
}

/// Plans `expr` for evaluation now: coerced, simplified with the current
/// time (so `now()` is a constant of this statement), then made physical.
pub(crate) fn physical_expr(
    state: &SessionState,
    expr: Expr,
    schema: &DFSchema,
) -> SqlResult<Arc<dyn datafusion::physical_expr::PhysicalExpr>> {
    let ctx = SimplifyContext::builder()
        .with_schema(Arc::new(schema.clone()))
        .with_config_options(Arc::clone(state.config_options()))
        .with_current_time()
        .build();
    let simplifier = ExprSimplifier::new(ctx);
    let expr = simplifier.coerce(expr, schema)?;
    let expr = simplifier.simplify(expr)?;
    Ok(state.create_physical_expr(expr, schema)?)
}

/// Replaces placeholders in `expr` with bound values.
fn bind(expr: Expr, params: Option<&ParamValues>) -> SqlResult<Expr> {
    let Some(params) = params else {
        return Ok(expr);
    };
    Ok(expr
        .transform(|e| match e {
            Expr::Placeholder(p) => {
                let value = params.get_placeholders_with_values(&p.id)?;
                Ok(Transformed::yes(Expr::Literal(value.value, value.metadata)))
            }
            other => Ok(Transformed::no(other)),
        })?
        .data)
}

/// The primary key from key parts, or `None` when a value cannot equal any
/// stored key (NULL, or out of the column type's range).
fn encode_key(
    entry: &TableEntry,
    parts: &[KeyPart],
    params: Option<&ParamValues>,
) -> SqlResult<Option<Vec<u8>>> {
    let columns = entry.codec.pk_indices().iter().map(|&c| (c, false));
    encode_elements(entry, parts, columns, entry.codec.index_prefix(), params)
}

/// `prefix` followed by the key elements of `parts` for `columns` (table
/// position, descending), or `None` when a value cannot equal any stored
/// key (NULL, or out of the column type's range).
fn encode_elements(
    entry: &TableEntry,
    parts: &[KeyPart],
    columns: impl Iterator<Item = (usize, bool)>,
    prefix: &[u8],
    params: Option<&ParamValues>,
) -> SqlResult<Option<Vec<u8>>> {
    let mut key = prefix.to_vec();
    for (part, (c, descending)) in parts.iter().zip(columns) {
        let ty = entry.desc.columns[c].ty;
        let value = match part {
            KeyPart::Literal(v) => v.clone(),
            KeyPart::Param(i) => match params {
                Some(ParamValues::List(list)) => {
                    list.get(*i).map(|v| v.value.clone()).ok_or_else(|| {
                        SqlError::new(
                            sqlstate::PROTOCOL_VIOLATION,
                            format!("no value for parameter ${}", i + 1),
                        )
                    })?
                }
                _ => {
                    return Err(SqlError::new(
                        sqlstate::PROTOCOL_VIOLATION,
                        format!("no value for parameter ${}", i + 1),
                    ));
                }
            },
        };
        if value.is_null() {
            return Ok(None);
        }
        let Ok(array) = value.to_array() else {
            return Ok(None);
        };
        let Ok(array) = conform(&array, ty) else {
            return Ok(None);
        };
        let reader = ColumnReader::new(&array, ty)?;
        let start = key.len();
        key.push(TAG_VALUE);
        reader.write_key(0, &mut key);
        if descending {
            key[start..].iter_mut().for_each(|b| *b = !*b);
        }
    }
    Ok(Some(key))
}

/// Evaluates an INSERT input (projection over VALUES) into table columns.
fn evaluate_insert(state: &SessionState, input: &LogicalPlan) -> SqlResult<Vec<ArrayRef>> {
    let LogicalPlan::Projection(proj) = input else {
        return Err(SqlError::internal("INSERT fast path expects a projection"));
    };
    let mut below = proj.input.as_ref();
    while let LogicalPlan::SubqueryAlias(a) = below {
        below = a.input.as_ref();
    }
    let LogicalPlan::Values(values) = below else {
        return Err(SqlError::internal("INSERT fast path expects VALUES"));
    };
    let empty = DFSchema::empty();
    let one_row = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )
    .map_err(|e| SqlError::internal(e.to_string()))?;
    let nrows = values.values.len();
    let mut columns = Vec::with_capacity(values.schema.fields().len());
    for (i, field) in values.schema.fields().iter().enumerate() {
        let mut cells = Vec::with_capacity(nrows);
        for row in &values.values {
            let physical = physical_expr(state, row[i].clone(), &empty)?;
            let array = physical.evaluate(&one_row)?.into_array(1)?;
            let array = if array.data_type() == field.data_type() {
                array
            } else {
                datafusion::arrow::compute::cast(&array, field.data_type())
                    .map_err(|e| SqlError::from(datafusion::error::DataFusionError::from(e)))?
            };
            cells.push(ScalarValue::try_from_array(&array, 0)?);
        }
        columns.push(ScalarValue::iter_to_array(cells)?);
    }
    let relaxed = Schema::new(
        values
            .schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    );
    let batch = RecordBatch::try_new_with_options(
        Arc::new(relaxed),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(nrows)),
    )
    .map_err(|e| SqlError::internal(e.to_string()))?;
    let values_schema = proj.input.schema();
    proj.expr
        .iter()
        .map(|e| {
            let physical = physical_expr(state, e.clone(), values_schema)?;
            Ok(physical.evaluate(&batch)?.into_array(nrows)?)
        })
        .collect()
}
