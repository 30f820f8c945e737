//! pgwire handlers: startup, simple and extended query protocol.

use std::fmt::Debug;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use arrow_pg::datatypes::df::deserialize_parameters;
use arrow_pg::datatypes::{arrow_schema_to_pg_fields, into_pg_type};
use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ParamValues;
use datafusion::sql::sqlparser::ast::Statement;
use futures::{FutureExt, Sink, StreamExt};
use holo_sql::limits::MAX_BUFFERED_RESULT_BYTES;
use holo_sql::session::statement_prefix;
use holo_sql::{
    PreparedStatement, Session, SqlEngine, SqlError, StatementOutput, TxnStatus, sqlstate,
};
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, Response};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionManager, ErrorHandler, PgWireServerHandlers, Type,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use crate::encode::{pg_error, response, timeout_error};

/// The connection's SQL session, kept in pgwire's per-connection extensions.
pub struct SessionHandle(pub Arc<Session>);

fn session_of(client: &(impl ClientInfo + ?Sized)) -> PgWireResult<Arc<Session>> {
    client
        .session_extensions()
        .get::<SessionHandle>()
        .map(|h| h.0.clone())
        .ok_or_else(|| pg_error(SqlError::internal("connection has no session")))
}

/// What to run: a parsed statement (simple protocol) or a prepared one.
enum Runnable<'a> {
    Statement(&'a Statement),
    Prepared(&'a PreparedStatement),
}

/// Runs `work` (one statement's parse, plan or execution) under the
/// session's statement timeout, catching a panic: a bug in one statement
/// answers XX000 (logged with the statement's text) and fails the
/// transaction block, and the connection and node keep serving.
async fn guarded<T>(
    session: &Arc<Session>,
    text: impl FnOnce() -> String,
    work: impl Future<Output = Result<T, SqlError>>,
) -> Result<T, SqlError> {
    let work = AssertUnwindSafe(work).catch_unwind();
    let caught = match session.statement_timeout() {
        Some(timeout) => match tokio::time::timeout(timeout, work).await {
            Ok(caught) => caught,
            Err(_) => {
                session.fail_transaction();
                if session.take_abandoned_commit() {
                    // The commit was cut off midway: lock resolution
                    // finishes it one way or the other.
                    return Err(SqlError::new(
                        sqlstate::STATEMENT_COMPLETION_UNKNOWN,
                        "statement completion unknown: the statement timeout expired \
                         while the transaction was committing",
                    )
                    .with_hint(
                        "the transaction may or may not have committed; check before retrying",
                    ));
                }
                return Err(timeout_error());
            }
        },
        None => work.await,
    };
    caught.unwrap_or_else(|payload| {
        let msg = holo_sql::planner::panic_message(payload.as_ref());
        tracing::error!(statement = %text(), panic = %msg, "statement panicked");
        session.fail_transaction();
        Err(SqlError::internal(format!("internal error: {msg}")))
    })
}

/// Runs one statement under the session's statement timeout.
async fn run_statement(
    session: &Arc<Session>,
    what: Runnable<'_>,
    params: Option<ParamValues>,
) -> Result<(StatementOutput, Option<Instant>), SqlError> {
    let interrupt = session.begin_statement();
    let deadline = interrupt.deadline();
    let stmt = match &what {
        Runnable::Statement(stmt) => *stmt,
        Runnable::Prepared(p) => &p.stmt,
    };
    let run = async {
        match what {
            Runnable::Statement(stmt) => session.execute(stmt, params).await,
            Runnable::Prepared(p) => session.execute_prepared(p, params).await,
        }
    };
    let out = guarded(session, || statement_prefix(stmt, LOGGED_TEXT), run).await?;
    Ok((out, deadline))
}

/// Bytes of a statement's text logged with its panic.
const LOGGED_TEXT: usize = 512;

/// The first bytes of `sql`, for logs.
fn text_prefix(sql: &str) -> String {
    let mut end = sql.len().min(LOGGED_TEXT);
    while !sql.is_char_boundary(end) {
        end -= 1;
    }
    sql[..end].to_string()
}

/// Startup: no authentication; creates the connection's session.
pub struct HoloStartup {
    engine: Arc<SqlEngine>,
    connections: Arc<ConnectionManager>,
}

#[async_trait]
impl NoopStartupHandler for HoloStartup {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(self.connections.clone())
    }

    async fn post_startup<C>(
        &self,
        client: &mut C,
        _message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = Arc::new(Session::new(&self.engine));
        client.session_extensions().insert(SessionHandle(session));
        Ok(())
    }
}

/// A statement prepared by the extended protocol.
#[derive(Clone, Debug)]
pub struct Prepared(pub PreparedStatement);

/// Parses and describes statements for the extended protocol.
pub struct HoloQueryParser;

fn pg_param_type(t: &Option<DataType>) -> PgWireResult<Type> {
    match t {
        Some(t) => into_pg_type(t),
        None => Ok(Type::TEXT),
    }
}

#[async_trait]
impl QueryParser for HoloQueryParser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let session = session_of(client)?;
        session.begin_statement();
        let work = async {
            let mut stmts = session.parse(sql).await?;
            if stmts.len() > 1 {
                return Err(SqlError::new(
                    sqlstate::SYNTAX_ERROR,
                    "cannot insert multiple commands into a prepared statement",
                ));
            }
            match stmts.pop() {
                Some(stmt) => session.prepare(stmt).await.map(Some),
                None => Ok(None),
            }
        };
        match guarded(&session, || text_prefix(sql), work).await {
            Ok(prepared) => Ok(prepared.map(Prepared)),
            Err(e) => {
                // A failed Parse fails the transaction block, as in PostgreSQL.
                session.fail_transaction();
                Err(pg_error(e))
            }
        }
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        stmt.0
            .described
            .param_types
            .iter()
            .map(pg_param_type)
            .collect()
    }

    fn get_result_schema(
        &self,
        stmt: &Prepared,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match &stmt.0.described.schema {
            Some(schema) => arrow_schema_to_pg_fields(
                schema,
                column_format.unwrap_or(&Format::UnifiedText),
                None,
            ),
            None => Ok(Vec::new()),
        }
    }
}

/// Decodes bound parameters and conforms them to the planned types.
fn bind_parameters(portal: &Portal<Prepared>) -> PgWireResult<ParamValues> {
    let planned = &portal.statement.statement.0.described.param_types;
    if portal.parameter_len() != planned.len() {
        return Err(pg_error(SqlError::new(
            sqlstate::PROTOCOL_VIOLATION,
            format!(
                "bind message supplies {} parameters, but prepared statement requires {}",
                portal.parameter_len(),
                planned.len()
            ),
        )));
    }
    let hints: Vec<Option<&DataType>> = planned.iter().map(Option::as_ref).collect();
    let values = deserialize_parameters(portal, &hints)?;
    let ParamValues::List(values) = values else {
        return Ok(values);
    };
    let conformed = values
        .into_iter()
        .zip(planned)
        .map(|(v, t)| {
            let value = v.value;
            match t {
                Some(t) if value.data_type() != *t => {
                    value.cast_to(t).map_err(|e| pg_error(SqlError::from(e)))
                }
                _ => Ok(value),
            }
        })
        .collect::<PgWireResult<Vec<_>>>()?;
    Ok(ParamValues::from(conformed))
}

/// Simple and extended query handling over a [`Session`].
pub struct HoloQueryHandler {
    query_parser: Arc<HoloQueryParser>,
}

#[async_trait]
impl SimpleQueryHandler for HoloQueryHandler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_of(client)?;
        session.begin_statement();
        let stmts = match guarded(&session, || text_prefix(query), session.parse(query)).await {
            Ok(s) => s,
            Err(e) => {
                session.fail_transaction();
                return Ok(vec![Response::Error(Box::new(error_info(e)))]);
            }
        };
        if stmts.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut responses = Vec::with_capacity(stmts.len());
        let last = stmts.len() - 1;
        // Like PostgreSQL, the statements of one query string form one
        // transaction when no block is open: all of them or none. Strings
        // with DDL or transaction control keep running statement by
        // statement (DDL is not transactional here).
        let implicit = last > 0
            && session.status() == TxnStatus::Idle
            && stmts.iter().all(|s| {
                matches!(
                    s,
                    Statement::Query(_)
                        | Statement::Insert(_)
                        | Statement::Update(_)
                        | Statement::Delete(_)
                )
            });
        if implicit && let Err(e) = session.begin_implicit().await {
            return Ok(vec![Response::Error(Box::new(error_info(e)))]);
        }
        let mut failed = false;
        let mut buffered = 0usize;
        for (i, stmt) in stmts.iter().enumerate() {
            let result = match run_statement(&session, Runnable::Statement(stmt), None).await {
                // pgwire sends the responses after this returns: rows of a
                // statement followed by others (or inside the implicit
                // transaction) are read now, so the next statement runs
                // after them (and not at all if they fail).
                Ok((StatementOutput::Rows(stream), deadline)) if i < last || implicit => {
                    collect_rows(stream, deadline, &mut buffered)
                        .await
                        .map(|out| (out, None))
                        .inspect_err(|_| session.fail_transaction())
                }
                other => other,
            };
            match result {
                Ok((output, deadline)) => {
                    responses.push(response(
                        output,
                        &Format::UnifiedText,
                        session.clone(),
                        deadline,
                    )?);
                }
                Err(e) => {
                    responses.push(Response::Error(Box::new(error_info(e))));
                    failed = true;
                    break;
                }
            }
        }
        if implicit && let Err(e) = session.end_implicit(!failed).await {
            responses.push(Response::Error(Box::new(error_info(e))));
        }
        Ok(responses)
    }
}

/// Reads a row stream to its end (within `deadline`) into a stream over
/// the rows in memory. `buffered` counts the bytes held for the whole
/// query string: past [`MAX_BUFFERED_RESULT_BYTES`] the statement fails
/// with 54000 instead of holding more.
async fn collect_rows(
    mut stream: datafusion::execution::SendableRecordBatchStream,
    deadline: Option<Instant>,
    buffered: &mut usize,
) -> Result<StatementOutput, SqlError> {
    let schema = stream.schema();
    let collect = async {
        let mut batches = Vec::new();
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            *buffered = buffered.saturating_add(batch.get_array_memory_size());
            if *buffered > MAX_BUFFERED_RESULT_BYTES {
                return Err(SqlError::new(
                    sqlstate::PROGRAM_LIMIT_EXCEEDED,
                    format!(
                        "the results of a multi-statement query string exceed \
                         {MAX_BUFFERED_RESULT_BYTES} bytes"
                    ),
                )
                .with_hint("send a statement with a large result as its own query"));
            }
            batches.push(batch);
        }
        Ok(batches)
    };
    let batches = match deadline {
        Some(d) => tokio::time::timeout_at(d.into(), collect)
            .await
            .map_err(|_| timeout_error())?,
        None => collect.await,
    }?;
    let memory = datafusion::physical_plan::memory::MemoryStream::try_new(batches, schema, None)?;
    Ok(StatementOutput::Rows(Box::pin(memory)))
}

fn error_info(e: SqlError) -> pgwire::error::ErrorInfo {
    match pg_error(e) {
        PgWireError::UserError(info) => *info,
        other => pgwire::error::ErrorInfo::new(
            "ERROR".into(),
            sqlstate::INTERNAL_ERROR.into(),
            other.to_string(),
        ),
    }
}

#[async_trait]
impl ExtendedQueryHandler for HoloQueryHandler {
    type Statement = Prepared;
    type QueryParser = HoloQueryParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.query_parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_of(client)?;
        let params = bind_parameters(portal).inspect_err(|_| session.fail_transaction())?;
        let prepared = &portal.statement.statement.0;
        let (output, deadline) =
            run_statement(&session, Runnable::Prepared(prepared), Some(params))
                .await
                .map_err(pg_error)?;
        response(output, &portal.result_column_format, session, deadline)
    }
}

/// Logs errors sent to clients.
pub struct HoloErrorHandler;

impl ErrorHandler for HoloErrorHandler {
    fn on_error<C>(&self, _client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        tracing::debug!(%error, "sending error to client");
    }
}

/// The handler set pgwire drives for every connection.
pub struct HoloHandlers {
    pub(crate) startup: Arc<HoloStartup>,
    pub(crate) query: Arc<HoloQueryHandler>,
    pub(crate) cancel: Arc<DefaultCancelHandler>,
}

impl HoloHandlers {
    /// Handlers over `engine`.
    pub fn new(engine: Arc<SqlEngine>) -> HoloHandlers {
        let connections = Arc::new(ConnectionManager::new());
        HoloHandlers {
            startup: Arc::new(HoloStartup {
                engine,
                connections: connections.clone(),
            }),
            query: Arc::new(HoloQueryHandler {
                query_parser: Arc::new(HoloQueryParser),
            }),
            cancel: Arc::new(DefaultCancelHandler::new(connections)),
        }
    }
}

impl PgWireServerHandlers for HoloHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.query.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.query.clone()
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        self.startup.clone()
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(HoloErrorHandler)
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.cancel.clone()
    }
}
