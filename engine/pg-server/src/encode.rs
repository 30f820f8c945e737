//! Turning statement outputs and errors into pgwire responses.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use datafusion::execution::SendableRecordBatchStream;
use futures::{Stream, StreamExt, stream};
use holo_sql::{Session, SqlError, StatementOutput};
use pgwire::api::portal::Format;
use pgwire::api::results::{QueryResponse, Response, Tag};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;

use crate::text_format;

/// The pgwire error for `e`, with SQLSTATE, detail and hint.
pub fn pg_error(e: SqlError) -> PgWireError {
    let mut info = ErrorInfo::new("ERROR".to_string(), e.code.to_string(), e.message);
    info.detail = e.detail;
    info.hint = e.hint;
    PgWireError::UserError(Box::new(info))
}

/// The error a statement timeout raises.
pub fn timeout_error() -> SqlError {
    holo_sql::interrupt::timed_out()
}

type RowIter = Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send + Sync>;

/// Ends a row stream with a timeout error once `deadline` passes, and with
/// XX000 if producing a batch panics (the connection stays up).
struct Deadline<S> {
    inner: S,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    expired: bool,
}

impl<S> Stream for Deadline<S>
where
    S: Stream<Item = datafusion::error::Result<datafusion::arrow::array::RecordBatch>> + Unpin,
{
    type Item = Result<datafusion::arrow::array::RecordBatch, SqlError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if let Some(sleep) = self.sleep.as_mut()
            && sleep.as_mut().poll(cx).is_ready()
        {
            self.expired = true;
            return Poll::Ready(Some(Err(timeout_error())));
        }
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.inner.poll_next_unpin(cx)
        }));
        match polled {
            Ok(poll) => poll.map(|item| item.map(|r| r.map_err(SqlError::from))),
            Err(payload) => {
                self.expired = true;
                let msg = holo_sql::planner::panic_message(payload.as_ref());
                tracing::error!(panic = %msg, "panic while producing rows");
                Poll::Ready(Some(Err(SqlError::internal(format!(
                    "internal error while producing rows: {msg}"
                )))))
            }
        }
    }
}

/// Encodes a row stream. A failure while streaming fails the session's
/// transaction block, as PostgreSQL does.
pub fn query_response(
    stream: SendableRecordBatchStream,
    format: &Format,
    session: Arc<Session>,
    deadline: Option<Instant>,
) -> PgWireResult<QueryResponse> {
    let fields = Arc::new(arrow_schema_to_pg_fields(
        stream.schema().as_ref(),
        format,
        None,
    )?);
    let row_fields = fields.clone();
    let render = text_format::TextRender::new(
        stream.schema().as_ref(),
        &fields,
        session.extra_float_digits(),
    );
    let sleep = deadline.map(|d| Box::pin(tokio::time::sleep_until(d.into())));
    let limited = Deadline {
        inner: stream,
        sleep,
        expired: false,
    };
    let rows = limited
        .map(move |batch| -> RowIter {
            match batch {
                Ok(batch) => match render_text(render.as_ref(), batch) {
                    Ok(batch) => Box::new(encode_recordbatch(row_fields.clone(), batch)),
                    Err(e) => Box::new(std::iter::once(Err(pg_error(SqlError::internal(
                        format!("rendering rows as text: {e}"),
                    ))))),
                },
                Err(e) => {
                    session.fail_transaction();
                    Box::new(std::iter::once(Err(pg_error(e))))
                }
            }
        })
        .flat_map(stream::iter);
    Ok(QueryResponse::new(fields, rows))
}

fn render_text(
    render: Option<&text_format::TextRender>,
    batch: datafusion::arrow::array::RecordBatch,
) -> Result<datafusion::arrow::array::RecordBatch, datafusion::arrow::error::ArrowError> {
    match render {
        Some(r) => r.apply(batch),
        None => Ok(batch),
    }
}

/// The pgwire response for a statement output.
pub fn response(
    output: StatementOutput,
    format: &Format,
    session: Arc<Session>,
    deadline: Option<Instant>,
) -> PgWireResult<Response> {
    Ok(match output {
        StatementOutput::Rows(stream) => {
            Response::Query(query_response(stream, format, session, deadline)?)
        }
        StatementOutput::Returned { tag, rows } => {
            let mut q = query_response(rows, format, session, deadline)?;
            // pgwire appends the row count: `INSERT 0 n` as PostgreSQL.
            q.set_command_tag(if tag == "INSERT" { "INSERT 0" } else { &tag });
            Response::Query(q)
        }
        StatementOutput::Command { tag, rows } => {
            let mut t = Tag::new(&tag);
            if tag == "INSERT" {
                t = t.with_oid(0);
            }
            if let Some(rows) = rows {
                t = t.with_rows(rows as usize);
            }
            Response::Execution(t)
        }
        StatementOutput::TxnStart(tag) => Response::TransactionStart(Tag::new(&tag)),
        StatementOutput::TxnEnd(tag) => Response::TransactionEnd(Tag::new(&tag)),
    })
}
