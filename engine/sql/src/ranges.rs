//! Range statements: `ALTER TABLE t SPLIT AT VALUES (...)[, (...)]`,
//! `ALTER TABLE t UNSPLIT AT VALUES (...)[, (...)]` and
//! `SHOW RANGES FROM TABLE t`.
//!
//! The parser turns them into `CALL holo_split_at('t', (...), ...)`,
//! `CALL holo_unsplit_at(...)` and `CALL holo_show_ranges('t')`
//! (`parse::custom`), which [`execute`] runs through the node's
//! [`ClusterAdmin`].

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{DFSchema, ParamValues};
use datafusion::logical_expr::{ColumnarValue, ExprSchemable};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Value,
};
use holo_kv::service::ClusterAdmin;

use crate::catalog::TableEntry;
use crate::catalog::relation_missing;
use crate::codec::key::{prefix_end, table_prefix};
use crate::error::{SqlError, SqlResult, sqlstate};

use crate::parse::custom::{SHOW_FN, SPLIT_FN, UNSPLIT_FN};

/// Whether `f` is one of the range calls.
pub fn is_range_call(f: &Function) -> bool {
    let name = f.name.to_string().to_lowercase();
    name == SPLIT_FN || name == UNSPLIT_FN || name == SHOW_FN
}

fn args(f: &Function) -> SqlResult<Vec<SqlExpr>> {
    let FunctionArguments::List(list) = &f.args else {
        return Err(SqlError::new(sqlstate::SYNTAX_ERROR, "missing arguments"));
    };
    list.args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e.clone()),
            _ => Err(SqlError::new(sqlstate::SYNTAX_ERROR, "unexpected argument")),
        })
        .collect()
}

fn table_arg(e: &SqlExpr) -> SqlResult<String> {
    match e {
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Ok(s.clone()),
            _ => Err(SqlError::new(
                sqlstate::SYNTAX_ERROR,
                "expected a table name",
            )),
        },
        _ => Err(SqlError::new(
            sqlstate::SYNTAX_ERROR,
            "expected a table name",
        )),
    }
}

fn split_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("range_id", DataType::Int64, false),
        Field::new("split_key", DataType::Utf8, false),
    ]))
}

fn show_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("range_id", DataType::Int64, false),
        Field::new("start_key", DataType::Utf8, false),
        Field::new("end_key", DataType::Utf8, false),
        Field::new("replicas", DataType::Utf8, false),
        Field::new("lease_holder", DataType::Int64, true),
        Field::new("approximate_bytes", DataType::Int64, false),
        Field::new("generation", DataType::Int64, false),
    ]))
}

/// The values of one `SPLIT AT` row.
fn row_values(row: &SqlExpr) -> Vec<SqlExpr> {
    match row {
        SqlExpr::Tuple(items) => items.clone(),
        SqlExpr::Nested(inner) => vec![(**inner).clone()],
        other => vec![other.clone()],
    }
}

/// `$n` as a 0-based parameter index.
fn placeholder(e: &SqlExpr) -> Option<usize> {
    match e {
        SqlExpr::Value(v) => match &v.value {
            Value::Placeholder(p) => p
                .strip_prefix('$')?
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= crate::limits::MAX_PARAMETERS)?
                .checked_sub(1),
            _ => None,
        },
        _ => None,
    }
}

/// Parameter types and result columns of a range call (for Describe).
pub fn describe_call(
    f: &Function,
    lookup: impl Fn(&str) -> Option<Arc<TableEntry>>,
) -> SqlResult<(Vec<Option<DataType>>, SchemaRef)> {
    let args = args(f)?;
    let fname = f.name.to_string().to_lowercase();
    if fname != SPLIT_FN && fname != UNSPLIT_FN {
        return Ok((Vec::new(), show_schema()));
    }
    let entry = match args.first() {
        Some(first) => lookup(&table_arg(first)?),
        None => None,
    };
    let mut types: Vec<Option<DataType>> = Vec::new();
    for row in args.iter().skip(1) {
        for (i, v) in row_values(row).iter().enumerate() {
            if let Some(n) = placeholder(v) {
                if types.len() <= n {
                    types.resize(n + 1, None);
                }
                let ty = entry.as_ref().and_then(|e| {
                    let c = *e.codec.pk_indices().get(i)?;
                    Some(e.desc.columns[c].ty.arrow_type())
                });
                types[n] = ty;
            }
        }
    }
    Ok((types, split_schema()))
}

/// The output of a range statement.
pub struct RangeOutput {
    /// Its rows.
    pub batch: RecordBatch,
}

/// Runs a range call.
pub async fn execute(
    ctx: &SessionContext,
    admin: Option<&Arc<dyn ClusterAdmin>>,
    lookup: impl Fn(&str) -> Option<Arc<TableEntry>>,
    f: &Function,
    params: Option<&ParamValues>,
) -> SqlResult<RangeOutput> {
    let Some(admin) = admin else {
        return Err(SqlError::unsupported(
            "range statements need a cluster node (this node runs with --single-node)",
        ));
    };
    let args = args(f)?;
    let Some(first) = args.first() else {
        return Err(SqlError::new(sqlstate::SYNTAX_ERROR, "missing table name"));
    };
    let name = table_arg(first)?;
    let entry = lookup(&name).ok_or_else(|| relation_missing(&name))?;
    let fname = f.name.to_string().to_lowercase();
    if fname == SPLIT_FN || fname == UNSPLIT_FN {
        let unsplit = fname == UNSPLIT_FN;
        split(ctx, admin.as_ref(), &entry, &args[1..], params, unsplit).await
    } else {
        show(admin.as_ref(), &entry).await
    }
}

async fn split(
    ctx: &SessionContext,
    admin: &dyn ClusterAdmin,
    entry: &TableEntry,
    rows: &[SqlExpr],
    params: Option<&ParamValues>,
    unsplit: bool,
) -> SqlResult<RangeOutput> {
    let verb = if unsplit { "UNSPLIT" } else { "SPLIT" };
    if rows.is_empty() {
        return Err(SqlError::new(
            sqlstate::SYNTAX_ERROR,
            format!("{verb} AT VALUES needs at least one row"),
        ));
    }
    let pk = entry.codec.pk_indices().to_vec();
    let mut keys = Vec::new();
    for row in rows {
        let values = row_values(row);
        if values.is_empty() || values.len() > pk.len() {
            return Err(SqlError::new(
                sqlstate::SYNTAX_ERROR,
                format!(
                    "{verb} AT values must have 1 to {} columns (the primary key of \"{}\")",
                    pk.len(),
                    entry.desc.name
                ),
            ));
        }
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for (v, &c) in values.iter().zip(&pk) {
            let ty = entry.desc.columns[c].ty.arrow_type();
            let array = match placeholder(v) {
                Some(n) => {
                    let value = match params {
                        Some(ParamValues::List(list)) => list.get(n).map(|p| p.value.clone()),
                        _ => None,
                    }
                    .ok_or_else(|| {
                        SqlError::new(
                            sqlstate::PROTOCOL_VIOLATION,
                            format!("no value for parameter ${}", n + 1),
                        )
                    })?;
                    datafusion::arrow::compute::cast(&value.to_array()?, &ty)
                        .map_err(|e| SqlError::new(sqlstate::DATATYPE_MISMATCH, e.to_string()))?
                }
                None => constant(ctx, &v.to_string(), ty)?,
            };
            arrays.push(array);
        }
        // A prefix of the key columns splits before every key with it.
        let key = entry.codec.encode_key_prefixes(&arrays)?.into_iter().next();
        keys.push(key.unwrap_or_else(|| entry.codec.index_prefix().to_vec()));
    }
    let mut ids = Vec::new();
    let mut pretty = Vec::new();
    for key in keys {
        if unsplit {
            admin
                .unsplit_at(key.clone())
                .await
                .map_err(SqlError::from)?;
        } else {
            admin.split_at(key.clone()).await.map_err(SqlError::from)?;
        }
        pretty.push(describe(entry, &key));
        let info = admin
            .range_info(&key, &prefix_end(&key))
            .await
            .map_err(SqlError::from)?;
        ids.push(info.first().map_or(0, |r| r.desc.id.0 as i64));
    }
    let batch = RecordBatch::try_new(
        split_schema(),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(pretty)),
        ],
    )
    .map_err(|e| SqlError::internal(e.to_string()))?;
    Ok(RangeOutput { batch })
}

fn constant(ctx: &SessionContext, sql: &str, ty: DataType) -> SqlResult<ArrayRef> {
    let empty = DFSchema::empty();
    let expr = ctx.parse_sql_expr(sql, &empty)?;
    let physical = ctx.create_physical_expr(expr.cast_to(&ty, &empty)?, &empty)?;
    let batch = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(1)),
    )
    .map_err(|e| SqlError::internal(e.to_string()))?;
    match physical.evaluate(&batch)? {
        ColumnarValue::Array(a) => Ok(a),
        ColumnarValue::Scalar(s) => Ok(s.to_array()?),
    }
}

fn describe(entry: &TableEntry, key: &[u8]) -> String {
    let prefix = entry.codec.index_prefix();
    if key <= prefix {
        return "-inf".into();
    }
    if key >= prefix_end(prefix).as_slice() {
        return "+inf".into();
    }
    entry.codec.describe_key(key).unwrap_or_else(|| {
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        format!("x'{hex}'")
    })
}

async fn show(admin: &dyn ClusterAdmin, entry: &TableEntry) -> SqlResult<RangeOutput> {
    let start = table_prefix(entry.desc.id);
    let end = prefix_end(&start);
    let ranges = admin
        .range_info(&start, &end)
        .await
        .map_err(SqlError::from)?;
    let n = ranges.len();
    let mut ids = Vec::with_capacity(n);
    let mut starts = Vec::with_capacity(n);
    let mut ends = Vec::with_capacity(n);
    let mut replica_lists = Vec::with_capacity(n);
    let mut leaseholders = Vec::with_capacity(n);
    let mut sizes = Vec::with_capacity(n);
    let mut generations = Vec::with_capacity(n);
    for r in ranges {
        let d = &r.desc;
        ids.push(d.id.0 as i64);
        starts.push(if d.start_key.as_slice() <= start.as_slice() {
            "-inf".into()
        } else {
            describe(entry, &d.start_key)
        });
        ends.push(if d.end_key.is_empty() || d.end_key >= end {
            "+inf".into()
        } else {
            describe(entry, &d.end_key)
        });
        let replicas: Vec<String> = d.replicas.iter().map(|r| r.node_id.to_string()).collect();
        replica_lists.push(format!("{{{}}}", replicas.join(",")));
        leaseholders.push(r.leaseholder.map(|l| l as i64));
        sizes.push(r.approximate_bytes as i64);
        generations.push(d.epoch.version as i64);
    }
    let batch = RecordBatch::try_new(
        show_schema(),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(starts)),
            Arc::new(StringArray::from(ends)),
            Arc::new(StringArray::from(replica_lists)),
            Arc::new(Int64Array::from(leaseholders)),
            Arc::new(Int64Array::from(sizes)),
            Arc::new(Int64Array::from(generations)),
        ],
    )
    .map_err(|e| SqlError::internal(e.to_string()))?;
    Ok(RangeOutput { batch })
}
