//! What a statement produces ([`StatementOutput`]) and helpers that build
//! row results.

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::WriteOp;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::sql::sqlparser::ast::Statement;

use crate::error::{SqlError, SqlResult};

/// What a statement produced.
pub enum StatementOutput {
    /// Rows (SELECT, SHOW, EXPLAIN).
    Rows(SendableRecordBatchStream),
    /// A command tag, with the affected row count when there is one.
    Command {
        /// Tag, e.g. `INSERT 0`, `UPDATE`, `CREATE TABLE`.
        tag: String,
        /// Affected rows.
        rows: Option<u64>,
    },
    /// Rows of a DML statement's RETURNING list, with the statement's
    /// command tag (`INSERT`, `UPDATE`, `DELETE`; the row count is the
    /// number of rows).
    Returned {
        /// Tag without the count.
        tag: String,
        /// The rows, computed before the statement ended.
        rows: SendableRecordBatchStream,
    },
    /// A transaction block started.
    TxnStart(String),
    /// A transaction block ended.
    TxnEnd(String),
}

impl StatementOutput {
    /// A command that affects no rows, e.g. `CREATE TABLE`.
    pub(crate) fn done(tag: &str) -> StatementOutput {
        StatementOutput::Command {
            tag: tag.into(),
            rows: None,
        }
    }
}

impl std::fmt::Debug for StatementOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatementOutput::Rows(_) => write!(f, "Rows"),
            StatementOutput::Command { tag, rows } => write!(f, "Command({tag}, {rows:?})"),
            StatementOutput::Returned { tag, .. } => write!(f, "Returned({tag})"),
            StatementOutput::TxnStart(t) => write!(f, "TxnStart({t})"),
            StatementOutput::TxnEnd(t) => write!(f, "TxnEnd({t})"),
        }
    }
}

pub(crate) fn one_column_rows(name: &str, values: Vec<String>) -> SqlResult<StatementOutput> {
    let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, false)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(values))])
        .map_err(|e| SqlError::internal(e.to_string()))?;
    rows_of(schema, vec![batch])
}

pub(crate) fn rows_of(schema: SchemaRef, batches: Vec<RecordBatch>) -> SqlResult<StatementOutput> {
    Ok(StatementOutput::Rows(stream_of(schema, batches)))
}

/// `batches` (in memory) as a stream of rows.
pub(crate) fn stream_of(schema: SchemaRef, batches: Vec<RecordBatch>) -> SendableRecordBatchStream {
    let stream = futures::stream::iter(batches.into_iter().map(Ok));
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

pub(crate) fn dml_tag(op: &WriteOp) -> &'static str {
    match op {
        WriteOp::Insert(_) => "INSERT",
        WriteOp::Update => "UPDATE",
        WriteOp::Delete => "DELETE",
        _ => "DML",
    }
}

/// Whether `stmt` writes rows.
pub(crate) fn is_dml(stmt: &Statement) -> bool {
    matches!(
        stmt,
        Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_)
    )
}
