//! [`Session`]: one client connection's transaction state, settings and
//! statement execution.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ParamValues;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::{SendableRecordBatchStream, SessionState, SessionStateBuilder};
use datafusion::logical_expr::{Expr, LogicalPlan, WriteOp};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{displayable, execute_stream};
use datafusion::sql::sqlparser::ast::{
    self, Expr as SqlExpr, ObjectType, Set, Statement, TransactionAccessMode,
    TransactionIsolationLevel, TransactionMode, Value,
};
use futures::StreamExt;
use holo_kv::{KvError, Transaction};
use holo_txn_types::KeyError;
use parking_lot::Mutex;

use crate::catalog::provider::TxnSlot;
use crate::codec::key::table_id_of;
use crate::ddl;
use crate::engine::SqlEngine;
use crate::error::{SqlError, SqlResult, sqlstate};
use crate::exec::dml::execute_dml;
use crate::exec::fast::{FastOutput, FastPlan};
use crate::interrupt::Interrupt;
use crate::interruptible::interruptible;
use crate::planner::PlanContext;

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
    /// A transaction block started.
    TxnStart(String),
    /// A transaction block ended.
    TxnEnd(String),
}

impl std::fmt::Debug for StatementOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatementOutput::Rows(_) => write!(f, "Rows"),
            StatementOutput::Command { tag, rows } => write!(f, "Command({tag}, {rows:?})"),
            StatementOutput::TxnStart(t) => write!(f, "TxnStart({t})"),
            StatementOutput::TxnEnd(t) => write!(f, "TxnEnd({t})"),
        }
    }
}

/// Where the session's transaction stands, as reported to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnStatus {
    /// No transaction block.
    Idle,
    /// Inside a transaction block.
    InBlock,
    /// Inside a failed transaction block (only ROLLBACK is accepted).
    Failed,
}

/// Types a prepared statement's parameters and result.
#[derive(Debug, Clone)]
pub struct Described {
    /// Parameter types in order (`None` when unknown).
    pub param_types: Vec<Option<DataType>>,
    /// Result columns, for statements that return rows.
    pub schema: Option<SchemaRef>,
}

/// The cached plan of a prepared statement.
#[derive(Debug, Clone)]
struct Planned {
    plan: LogicalPlan,
    fast: Option<FastPlan>,
    catalog_version: u64,
}

/// A statement prepared by [`Session::prepare`].
#[derive(Debug, Clone)]
pub struct PreparedStatement {
    /// The statement.
    pub stmt: Statement,
    /// Its parameter and result types.
    pub described: Described,
    planned: Option<Planned>,
}

enum TxnState {
    Idle,
    Open {
        txn: Arc<Transaction>,
        read_only: bool,
    },
    Aborted,
}

struct Inner {
    txn: TxnState,
    vars: BTreeMap<&'static str, String>,
}

/// Settings a client may SET, with their defaults.
const SETTINGS: &[(&str, &str)] = &[
    ("application_name", ""),
    ("client_encoding", "UTF8"),
    ("client_min_messages", "notice"),
    ("datestyle", "ISO, MDY"),
    ("default_transaction_isolation", "repeatable read"),
    ("default_transaction_read_only", "off"),
    ("extra_float_digits", "1"),
    ("idle_in_transaction_session_timeout", "0"),
    ("integer_datetimes", "on"),
    ("intervalstyle", "postgres"),
    ("lock_timeout", "0"),
    ("search_path", "\"$user\", public"),
    ("server_encoding", "UTF8"),
    ("server_version", "16.6"),
    ("server_version_num", "160006"),
    ("standard_conforming_strings", "on"),
    ("statement_timeout", "0"),
    ("timezone", "UTC"),
    ("transaction_isolation", "repeatable read"),
    ("transaction_read_only", "off"),
];

fn setting_name(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    SETTINGS.iter().find(|(n, _)| *n == lower).map(|(n, _)| *n)
}

fn value_text(expr: &SqlExpr) -> String {
    match expr {
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            Value::Number(n, _) => n.to_string(),
            Value::Boolean(b) => if *b { "on" } else { "off" }.to_string(),
            other => other.to_string(),
        },
        SqlExpr::Identifier(id) => id.value.clone(),
        other => other.to_string(),
    }
}

/// Largest timeout setting in milliseconds, as in PostgreSQL (`INT_MAX`).
const MAX_TIMEOUT_MS: u64 = i32::MAX as u64;

/// Parses a PostgreSQL duration setting (`5000`, `'5s'`, `'250ms'`,
/// `'1min'`, `'2h'`, `'1d'`); `None` when malformed or above
/// 2147483647 ms.
pub fn parse_duration_setting(v: &str) -> Option<Duration> {
    let v = v.trim().to_ascii_lowercase();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit.trim() {
        "" | "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "min" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        "us" => Some(n / 1000),
        _ => None,
    }?;
    (ms <= MAX_TIMEOUT_MS).then(|| Duration::from_millis(ms))
}

fn is_utc(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "utc"
            | "etc/utc"
            | "gmt"
            | "etc/gmt"
            | "z"
            | "zulu"
            | "+00:00"
            | "00:00"
            | "0"
            | "+0"
            | "utc0"
            | "universal"
    )
}

fn one_column_rows(name: &str, values: Vec<String>) -> SqlResult<StatementOutput> {
    let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, false)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(values))])
        .map_err(|e| SqlError::internal(e.to_string()))?;
    rows_of(schema, vec![batch])
}

fn rows_of(schema: SchemaRef, batches: Vec<RecordBatch>) -> SqlResult<StatementOutput> {
    let stream = futures::stream::iter(batches.into_iter().map(Ok));
    Ok(StatementOutput::Rows(Box::pin(
        RecordBatchStreamAdapter::new(schema, stream),
    )))
}

fn dml_tag(op: &WriteOp) -> &'static str {
    match op {
        WriteOp::Insert(_) => "INSERT",
        WriteOp::Update => "UPDATE",
        WriteOp::Delete => "DELETE",
        _ => "DML",
    }
}

fn is_dml(stmt: &Statement) -> bool {
    matches!(
        stmt,
        Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_)
    )
}

/// `default_transaction_read_only`: transactions (also implicit ones)
/// start read-only.
fn default_read_only(inner: &Inner) -> bool {
    inner
        .vars
        .get("default_transaction_read_only")
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "on" | "true" | "1" | "yes"))
}

fn check_isolation(modes: &[TransactionMode]) -> SqlResult<Option<bool>> {
    let mut read_only = None;
    for mode in modes {
        match mode {
            TransactionMode::IsolationLevel(level) => match level {
                TransactionIsolationLevel::ReadUncommitted
                | TransactionIsolationLevel::ReadCommitted
                | TransactionIsolationLevel::RepeatableRead
                | TransactionIsolationLevel::Snapshot => {}
                TransactionIsolationLevel::Serializable => {
                    return Err(SqlError::unsupported(
                        "SERIALIZABLE isolation is not supported; HoloFusion runs transactions under \
                         snapshot isolation (REPEATABLE READ), which permits write skew",
                    )
                    .with_hint("use REPEATABLE READ, or guard invariants with explicit writes to shared rows"));
                }
            },
            TransactionMode::AccessMode(TransactionAccessMode::ReadOnly) => read_only = Some(true),
            TransactionMode::AccessMode(TransactionAccessMode::ReadWrite) => {
                read_only = Some(false)
            }
        }
    }
    Ok(read_only)
}

/// One client connection's SQL session.
pub struct Session {
    engine: Arc<SqlEngine>,
    state: Arc<SessionState>,
    slot: Arc<TxnSlot>,
    inner: Mutex<Inner>,
    /// The running statement's cancel flag and deadline.
    interrupt: Mutex<Arc<Interrupt>>,
    /// Set while a commit runs; left set when the commit was abandoned
    /// (statement timeout), so its outcome is reported as unknown.
    committing: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("status", &self.status())
            .finish()
    }
}

impl Session {
    pub(crate) fn new(engine: Arc<SqlEngine>, base: SessionState) -> Session {
        let slot = Arc::new(TxnSlot::default());
        let config = base.config().clone().with_extension(slot.clone());
        let state = SessionStateBuilder::new_from_existing(base)
            .with_config(config)
            .build();
        Session {
            engine,
            state: Arc::new(interruptible(state)),
            slot,
            interrupt: Mutex::new(Interrupt::none()),
            inner: Mutex::new(Inner {
                txn: TxnState::Idle,
                vars: SETTINGS.iter().map(|(n, v)| (*n, v.to_string())).collect(),
            }),
            committing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether the statement just abandoned (timed out) was committing: its
    /// transaction may or may not have committed. Clears the mark.
    pub fn take_abandoned_commit(&self) -> bool {
        self.committing
            .swap(false, std::sync::atomic::Ordering::SeqCst)
    }

    /// The transaction status for ReadyForQuery.
    pub fn status(&self) -> TxnStatus {
        match self.inner.lock().txn {
            TxnState::Idle => TxnStatus::Idle,
            TxnState::Open { .. } => TxnStatus::InBlock,
            TxnState::Aborted => TxnStatus::Failed,
        }
    }

    /// The `statement_timeout` setting, when set.
    pub fn statement_timeout(&self) -> Option<Duration> {
        let inner = self.inner.lock();
        let v = inner.vars.get("statement_timeout")?;
        parse_duration_setting(v).filter(|d| !d.is_zero())
    }

    /// Marks an open transaction block as failed (after an error the caller
    /// saw while streaming rows, or a cancellation).
    pub fn fail_transaction(&self) {
        let mut inner = self.inner.lock();
        if matches!(inner.txn, TxnState::Open { .. }) {
            inner.txn = TxnState::Aborted;
        }
    }

    /// Plans `stmt` without running it: parameter types and result columns.
    pub async fn describe(&self, stmt: &Statement) -> SqlResult<Described> {
        Ok(self.prepare(stmt.clone()).await?.described)
    }

    /// Prepares `stmt` for repeated execution: types its parameters and
    /// result, and keeps its logical plan (and fast path) until the catalog
    /// changes.
    pub async fn prepare(&self, stmt: Statement) -> SqlResult<PreparedStatement> {
        if let Statement::Call(f) = &stmt
            && crate::ranges::is_range_call(f)
        {
            let catalog = self.engine.catalog().clone();
            let (param_types, schema) = crate::ranges::describe_call(f, |n| catalog.table(n))?;
            return Ok(PreparedStatement {
                stmt,
                described: Described {
                    param_types,
                    schema: Some(schema),
                },
                planned: None,
            });
        }
        let empty = Described {
            param_types: Vec::new(),
            schema: None,
        };
        if !matches!(
            stmt,
            Statement::Query(_)
                | Statement::Insert(_)
                | Statement::Update(_)
                | Statement::Delete(_)
        ) {
            return Ok(PreparedStatement {
                stmt,
                described: empty,
                planned: None,
            });
        }
        self.check_supported(&stmt)?;
        let catalog_version = self.engine.catalog().version();
        let plan = self.plan(&stmt).await?;
        let mut types = plan.get_parameter_types()?;
        // `$1::bigint`: a parameter typed only by its cast takes the cast's type.
        if types.values().any(Option::is_none) {
            plan.apply(|node| {
                for expr in node.expressions() {
                    expr.apply(|e| {
                        if let Expr::Cast(c) = e
                            && let Expr::Placeholder(p) = c.expr.as_ref()
                            && let Some(slot @ None) = types.get_mut(&p.id)
                        {
                            *slot = Some(c.field.data_type().clone());
                        }
                        Ok(TreeNodeRecursion::Continue)
                    })?;
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        let mut ordered: Vec<(usize, Option<DataType>)> = types
            .into_iter()
            .map(|(id, t)| {
                let n = id.trim_start_matches('$').parse::<usize>().map_err(|_| {
                    SqlError::new(
                        sqlstate::INVALID_PSTATEMENT_DEFINITION,
                        format!("bad parameter {id}"),
                    )
                })?;
                Ok((n, t))
            })
            .collect::<SqlResult<_>>()?;
        ordered.sort_by_key(|(n, _)| *n);
        let count = ordered.last().map_or(0, |(n, _)| *n);
        if count > crate::limits::MAX_PARAMETERS {
            return Err(SqlError::new(
                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "parameter ${count} exceeds the limit of {} parameters",
                    crate::limits::MAX_PARAMETERS
                ),
            ));
        }
        let mut param_types = vec![None; count];
        for (n, t) in ordered {
            if n == 0 {
                return Err(SqlError::new(
                    sqlstate::INVALID_PSTATEMENT_DEFINITION,
                    "parameter $0 does not exist",
                ));
            }
            param_types[n - 1] = t;
        }
        let schema = match &plan {
            LogicalPlan::Dml(_) => None,
            other => Some(Arc::new(other.schema().as_arrow().clone())),
        };
        let fast = FastPlan::detect(&plan);
        Ok(PreparedStatement {
            stmt,
            described: Described {
                param_types,
                schema,
            },
            planned: Some(Planned {
                plan,
                fast,
                catalog_version,
            }),
        })
    }

    /// Starts a statement: a fresh interrupt, with the statement timeout's
    /// deadline, that parsing and planning check.
    pub fn begin_statement(&self) -> Arc<Interrupt> {
        let interrupt = Interrupt::new(self.statement_timeout());
        *self.interrupt.lock() = interrupt.clone();
        interrupt
    }

    /// The running statement's interrupt.
    pub fn interrupt(&self) -> Arc<Interrupt> {
        self.interrupt.lock().clone()
    }

    /// Parses `sql` on the planner pool, under the running statement's
    /// interrupt.
    pub async fn parse(&self, sql: &str) -> SqlResult<Vec<Statement>> {
        crate::parse::check_query_size(sql.len())?;
        let interrupt = self.interrupt();
        let text = sql.to_string();
        let job_interrupt = interrupt.clone();
        self.engine
            .planner()
            .run(&interrupt, move || {
                crate::parse::parse(&text, Some(job_interrupt))
            })
            .await
    }

    /// How the running statement plans: on the node's planner pool, under
    /// its interrupt.
    fn planning(&self) -> PlanContext {
        PlanContext::new(
            self.state.clone(),
            self.engine.planner().clone(),
            self.interrupt(),
        )
    }

    /// Plans `stmt` logically on the planner pool.
    async fn plan(&self, stmt: &Statement) -> SqlResult<LogicalPlan> {
        self.planning().logical(stmt).await
    }

    /// Rejects statement forms outside the supported scope before planning.
    fn check_supported(&self, stmt: &Statement) -> SqlResult<()> {
        match stmt {
            Statement::Insert(ins) => {
                if ins.returning.is_some() {
                    return Err(SqlError::unsupported(
                        "INSERT ... RETURNING is not supported",
                    ));
                }
                if ins.on.is_some() {
                    return Err(SqlError::unsupported(
                        "INSERT ... ON CONFLICT is not supported",
                    ));
                }
                if ins.overwrite || ins.replace_into || ins.or.is_some() || ins.ignore {
                    return Err(SqlError::unsupported("this INSERT form is not supported"));
                }
                if ins.source.is_none() {
                    return Err(SqlError::unsupported(
                        "INSERT without VALUES or SELECT is not supported",
                    ));
                }
            }
            Statement::Update(upd) => {
                if upd.returning.is_some() {
                    return Err(SqlError::unsupported(
                        "UPDATE ... RETURNING is not supported",
                    ));
                }
                if upd.from.is_some() {
                    return Err(SqlError::unsupported("UPDATE ... FROM is not supported"));
                }
                if !upd.table.joins.is_empty() {
                    return Err(SqlError::unsupported("UPDATE of a join is not supported"));
                }
                if upd.limit.is_some() || !upd.order_by.is_empty() {
                    return Err(SqlError::new(
                        sqlstate::SYNTAX_ERROR,
                        "UPDATE does not take ORDER BY or LIMIT",
                    ));
                }
            }
            Statement::Delete(del) => {
                if del.returning.is_some() {
                    return Err(SqlError::unsupported(
                        "DELETE ... RETURNING is not supported",
                    ));
                }
                if del.using.is_some() {
                    return Err(SqlError::unsupported("DELETE ... USING is not supported"));
                }
                if del.limit.is_some() || !del.order_by.is_empty() {
                    return Err(SqlError::new(
                        sqlstate::SYNTAX_ERROR,
                        "DELETE does not take ORDER BY or LIMIT",
                    ));
                }
                if !del.tables.is_empty() {
                    return Err(SqlError::unsupported("multi-table DELETE is not supported"));
                }
            }
            Statement::Query(q) if !q.locks.is_empty() => {
                return Err(SqlError::unsupported(
                    "SELECT ... FOR UPDATE/SHARE is not supported",
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// Runs one statement, with `params` bound to its placeholders.
    pub async fn execute(
        &self,
        stmt: &Statement,
        params: Option<ParamValues>,
    ) -> SqlResult<StatementOutput> {
        let result = self.execute_inner(stmt, None, params).await;
        self.count_failure(&result);
        result
    }

    /// Runs a prepared statement, reusing its plan while the catalog is
    /// unchanged.
    pub async fn execute_prepared(
        &self,
        prepared: &PreparedStatement,
        params: Option<ParamValues>,
    ) -> SqlResult<StatementOutput> {
        let planned = prepared
            .planned
            .as_ref()
            .filter(|p| p.catalog_version == self.engine.catalog().version());
        let result = self.execute_inner(&prepared.stmt, planned, params).await;
        self.count_failure(&result);
        result
    }

    /// Counts a failed statement in the node's transaction metrics.
    fn count_failure(&self, result: &SqlResult<StatementOutput>) {
        if let Err(e) = result {
            self.engine.txn_metrics().statement_failed(e);
        }
    }

    async fn execute_inner(
        &self,
        stmt: &Statement,
        planned: Option<&Planned>,
        params: Option<ParamValues>,
    ) -> SqlResult<StatementOutput> {
        // Fault injection: `FAILPOINTS=sql::statement=return(MARKER)` makes
        // every statement whose text contains MARKER panic.
        if let Some(Some(marker)) = fail::eval("sql::statement", |arg| arg)
            && statement_prefix(stmt, 4096).contains(&marker)
        {
            panic!("failpoint sql::statement: the statement contains {marker}");
        }
        match stmt {
            Statement::StartTransaction { modes, .. } => return self.begin(modes).await,
            Statement::Commit { chain: false, .. } => return self.commit().await,
            Statement::Rollback {
                savepoint: None,
                chain: false,
            } => return Ok(self.rollback()),
            Statement::Commit { .. } | Statement::Rollback { .. } => {
                return Err(SqlError::unsupported(
                    "COMMIT/ROLLBACK AND CHAIN and ROLLBACK TO SAVEPOINT are not supported",
                ));
            }
            Statement::Savepoint { .. } | Statement::ReleaseSavepoint { .. } => {
                return Err(SqlError::unsupported("SAVEPOINT is not supported"));
            }
            _ => {}
        }
        let (txn, autocommit, read_only) = {
            let inner = self.inner.lock();
            match &inner.txn {
                TxnState::Aborted => {
                    return Err(SqlError::new(
                        sqlstate::IN_FAILED_SQL_TRANSACTION,
                        "current transaction is aborted, commands ignored until end of transaction block",
                    ));
                }
                TxnState::Open { txn, read_only } => (Some(txn.clone()), false, *read_only),
                TxnState::Idle => (None, true, default_read_only(&inner)),
            }
        };
        let txn = match txn {
            Some(t) => t,
            None => Arc::new(
                Transaction::begin(self.engine.kv().clone(), self.engine.options().txn.clone())
                    .await?,
            ),
        };
        if read_only && is_dml(stmt) {
            return Err(SqlError::new(
                "25006",
                "cannot execute a write in a read-only transaction",
            ));
        }
        let result = match planned {
            Some(p) => {
                self.run_plan(&p.plan, p.fast.as_ref(), params, &txn, autocommit)
                    .await
            }
            None => self.run(stmt, params, &txn, autocommit).await,
        };
        if result.is_err() && !autocommit {
            self.fail_transaction();
        }
        result
    }

    async fn begin(&self, modes: &[TransactionMode]) -> SqlResult<StatementOutput> {
        let read_only = match check_isolation(modes)? {
            Some(ro) => ro,
            None => default_read_only(&self.inner.lock()),
        };
        if !matches!(self.inner.lock().txn, TxnState::Idle) {
            tracing::debug!("BEGIN inside a transaction block: ignored, as PostgreSQL does");
            return Ok(StatementOutput::TxnStart("BEGIN".into()));
        }
        let txn =
            Transaction::begin(self.engine.kv().clone(), self.engine.options().txn.clone()).await?;
        self.inner.lock().txn = TxnState::Open {
            txn: Arc::new(txn),
            read_only,
        };
        self.engine.txn_metrics().begin();
        Ok(StatementOutput::TxnStart("BEGIN".into()))
    }

    /// Opens the implicit transaction PostgreSQL wraps around the
    /// statements of one multi-statement simple query.
    pub async fn begin_implicit(&self) -> SqlResult<()> {
        self.begin(&[]).await.map(|_| ())
    }

    /// Ends the implicit transaction: commits it when every statement
    /// succeeded (`ok`), rolls it back otherwise.
    pub async fn end_implicit(&self, ok: bool) -> SqlResult<()> {
        if ok {
            self.commit().await.map(|_| ())
        } else {
            self.rollback();
            Ok(())
        }
    }

    async fn commit(&self) -> SqlResult<StatementOutput> {
        let state = std::mem::replace(&mut self.inner.lock().txn, TxnState::Idle);
        match state {
            TxnState::Idle => Ok(StatementOutput::TxnEnd("COMMIT".into())),
            TxnState::Aborted => {
                self.engine.txn_metrics().rolled_back();
                Ok(StatementOutput::TxnEnd("ROLLBACK".into()))
            }
            TxnState::Open { txn, .. } => {
                self.commit_txn(&txn).await?;
                Ok(StatementOutput::TxnEnd("COMMIT".into()))
            }
        }
    }

    /// Commits `txn`, counting the outcome and timing it in the node's
    /// transaction metrics; a failure is mapped to SQL naming the table.
    async fn commit_txn(&self, txn: &Transaction) -> SqlResult<()> {
        let started = Instant::now();
        let metrics = self.engine.txn_metrics();
        self.committing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let result = txn.commit().await;
        self.committing
            .store(false, std::sync::atomic::Ordering::SeqCst);
        match result {
            Ok(info) => {
                metrics.committed(&info, started.elapsed());
                Ok(())
            }
            Err(e) => {
                metrics.commit_failed(&e);
                Err(self.kv_error(e))
            }
        }
    }

    fn rollback(&self) -> StatementOutput {
        let state = std::mem::replace(&mut self.inner.lock().txn, TxnState::Idle);
        match state {
            TxnState::Open { txn, .. } => {
                txn.rollback();
                self.engine.txn_metrics().rolled_back();
            }
            TxnState::Aborted => self.engine.txn_metrics().rolled_back(),
            TxnState::Idle => {}
        }
        StatementOutput::TxnEnd("ROLLBACK".into())
    }

    /// Maps a KV error to SQL, naming the table and key where possible.
    pub fn kv_error(&self, e: KvError) -> SqlError {
        let key = match &e {
            KvError::Key(KeyError::AlreadyExists { key }) => Some(key.clone()),
            KvError::Key(KeyError::Conflict(c)) => Some(c.key.clone()),
            KvError::Key(KeyError::Locked(l)) => Some(l.key.clone()),
            KvError::LockWaitTimeout { key, .. } => Some(key.clone()),
            _ => None,
        };
        let mut err = SqlError::from(e.clone());
        let Some(entry) = key
            .as_deref()
            .and_then(table_id_of)
            .and_then(|id| self.engine.catalog().table_by_id(id))
        else {
            return err;
        };
        let table = &entry.desc.name;
        match &e {
            KvError::Key(KeyError::AlreadyExists { key }) => {
                err = crate::exec::dml::duplicate_key_error(&entry, key);
            }
            _ => {
                err.message = format!(
                    "could not serialize access due to concurrent update of table \"{table}\""
                );
            }
        }
        err
    }

    async fn run(
        &self,
        stmt: &Statement,
        params: Option<ParamValues>,
        txn: &Arc<Transaction>,
        autocommit: bool,
    ) -> SqlResult<StatementOutput> {
        self.check_supported(stmt)?;
        match stmt {
            Statement::Query(_)
            | Statement::Insert(_)
            | Statement::Update(_)
            | Statement::Delete(_) => {
                let plan = self.plan(stmt).await?;
                let fast = FastPlan::detect(&plan);
                self.run_plan(&plan, fast.as_ref(), params, txn, autocommit)
                    .await
            }
            Statement::CreateTable(ct) => {
                self.require_autocommit(autocommit, "CREATE TABLE")?;
                ddl::create_table(self.engine.catalog(), ct).await?;
                Ok(StatementOutput::Command {
                    tag: "CREATE TABLE".into(),
                    rows: None,
                })
            }
            Statement::Drop {
                object_type: ObjectType::Table,
                if_exists,
                names,
                ..
            } => {
                self.require_autocommit(autocommit, "DROP TABLE")?;
                ddl::drop_tables(self.engine.catalog(), names, *if_exists).await?;
                Ok(StatementOutput::Command {
                    tag: "DROP TABLE".into(),
                    rows: None,
                })
            }
            Statement::Explain {
                statement, analyze, ..
            } if is_dml(statement) => {
                if *analyze {
                    return Err(SqlError::unsupported(
                        "EXPLAIN ANALYZE of INSERT/UPDATE/DELETE is not supported",
                    ));
                }
                self.check_supported(statement)?;
                let plan = self.bind(self.plan(statement).await?, params)?;
                let LogicalPlan::Dml(dml) = &plan else {
                    return Err(SqlError::internal("DML statement did not plan to DML"));
                };
                let physical = self.physical_plan(&dml.input, txn).await?;
                let header = format!("HoloWriteExec: op={}, table={}", dml.op, dml.table_name);
                let physical_text = format!(
                    "{header}\n  {}",
                    displayable(physical.as_ref())
                        .indent(true)
                        .to_string()
                        .replace('\n', "\n  ")
                );
                let schema = Arc::new(Schema::new(vec![
                    Field::new("plan_type", DataType::Utf8, false),
                    Field::new("plan", DataType::Utf8, false),
                ]));
                let batch = RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(StringArray::from(vec!["logical_plan", "physical_plan"])),
                        Arc::new(StringArray::from(vec![
                            plan.display_indent().to_string(),
                            physical_text.trim_end().to_string(),
                        ])),
                    ],
                )
                .map_err(|e| SqlError::internal(e.to_string()))?;
                rows_of(schema, vec![batch])
            }
            Statement::Explain { statement, .. } => {
                if !matches!(statement.as_ref(), Statement::Query(_)) {
                    return Err(SqlError::unsupported(format!(
                        "EXPLAIN of {} is not supported",
                        statement_kind(statement)
                    )));
                }
                self.check_supported(statement)?;
                let plan = self.bind(self.plan(stmt).await?, params)?;
                let physical = self.physical_plan(&plan, txn).await?;
                let stream = execute_stream(physical, self.state.task_ctx())?;
                Ok(StatementOutput::Rows(stream))
            }
            Statement::Call(f) if crate::ranges::is_range_call(f) => {
                self.require_autocommit(autocommit, "range statements")?;
                let catalog = self.engine.catalog().clone();
                let out = crate::ranges::execute(
                    self.engine.base_context(),
                    self.engine.options().admin.as_ref(),
                    |name| catalog.table(name),
                    f,
                    params.as_ref(),
                )
                .await?;
                rows_of(out.batch.schema(), vec![out.batch])
            }
            Statement::Set(set) => self.set(set),
            Statement::ShowVariable { variable } => self.show(variable),
            Statement::Discard { .. } => {
                self.require_autocommit(autocommit, "DISCARD ALL")?;
                self.inner.lock().vars =
                    SETTINGS.iter().map(|(n, v)| (*n, v.to_string())).collect();
                Ok(StatementOutput::Command {
                    tag: "DISCARD ALL".into(),
                    rows: None,
                })
            }
            other => Err(SqlError::unsupported(format!(
                "{} is not supported",
                statement_kind(other)
            ))),
        }
    }

    /// Runs a planned query or DML statement: on its fast path when it has
    /// one (and its table is unchanged), otherwise through DataFusion.
    async fn run_plan(
        &self,
        plan: &LogicalPlan,
        fast: Option<&FastPlan>,
        params: Option<ParamValues>,
        txn: &Arc<Transaction>,
        autocommit: bool,
    ) -> SqlResult<StatementOutput> {
        let tag = match plan {
            LogicalPlan::Dml(dml) => Some(dml_tag(&dml.op)),
            _ => None,
        };
        if let Some(fast) = fast {
            let current = self.engine.catalog().table(&fast.entry().desc.name);
            if current.is_some_and(|t| Arc::ptr_eq(&t, fast.entry())) {
                let out = fast
                    .execute(&self.state, txn, params.as_ref(), !autocommit)
                    .await?;
                return match out {
                    FastOutput::Rows(batch) => rows_of(batch.schema(), vec![batch]),
                    FastOutput::Written(rows) => {
                        if autocommit {
                            self.commit_txn(txn).await?;
                        }
                        Ok(StatementOutput::Command {
                            tag: tag.unwrap_or("UPDATE").to_string(),
                            rows: Some(rows),
                        })
                    }
                };
            }
        }
        let plan = self.bind(plan.clone(), params)?;
        match plan {
            LogicalPlan::Dml(dml) => {
                self.slot.set(Some(txn.clone()));
                let rows = execute_dml(
                    &self.planning(),
                    txn,
                    self.engine.catalog(),
                    &dml,
                    !autocommit,
                )
                .await;
                self.slot.set(None);
                let rows = rows?;
                if autocommit {
                    self.commit_txn(txn).await?;
                }
                Ok(StatementOutput::Command {
                    tag: dml_tag(&dml.op).to_string(),
                    rows: Some(rows),
                })
            }
            plan => {
                let physical = self.physical_plan(&plan, txn).await?;
                let stream = execute_stream(physical, self.state.task_ctx())?;
                Ok(StatementOutput::Rows(stream))
            }
        }
    }

    /// Plans `plan` physically with `txn` installed for the scans.
    async fn physical_plan(
        &self,
        plan: &LogicalPlan,
        txn: &Arc<Transaction>,
    ) -> SqlResult<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        self.slot.set(Some(txn.clone()));
        let physical = self.planning().physical(plan).await;
        self.slot.set(None);
        physical
    }

    fn require_autocommit(&self, autocommit: bool, what: &str) -> SqlResult<()> {
        if autocommit {
            Ok(())
        } else {
            Err(SqlError::new(
                sqlstate::ACTIVE_SQL_TRANSACTION,
                format!("{what} cannot run inside a transaction block"),
            ))
        }
    }

    fn bind(&self, plan: LogicalPlan, params: Option<ParamValues>) -> SqlResult<LogicalPlan> {
        match params {
            Some(p) => Ok(plan.with_param_values(p)?),
            None => Ok(plan),
        }
    }

    fn set(&self, set: &Set) -> SqlResult<StatementOutput> {
        let done = || {
            Ok(StatementOutput::Command {
                tag: "SET".into(),
                rows: None,
            })
        };
        match set {
            Set::SingleAssignment {
                variable, values, ..
            } => {
                let raw = variable.to_string();
                let name = setting_name(&raw).ok_or_else(|| {
                    SqlError::new(
                        sqlstate::UNDEFINED_OBJECT,
                        format!("unrecognized configuration parameter \"{raw}\""),
                    )
                })?;
                let value = values.iter().map(value_text).collect::<Vec<_>>().join(", ");
                let value = if value.eq_ignore_ascii_case("default") {
                    SETTINGS
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, v)| v.to_string())
                        .unwrap_or_default()
                } else {
                    value
                };
                match name {
                    "timezone" if !is_utc(&value) => {
                        return Err(SqlError::unsupported(format!(
                            "time zone \"{value}\" is not supported; sessions run in UTC"
                        )));
                    }
                    "client_encoding"
                        if !matches!(
                            value.to_ascii_uppercase().as_str(),
                            "UTF8" | "UTF-8" | "UNICODE"
                        ) =>
                    {
                        return Err(SqlError::unsupported(format!(
                            "client encoding \"{value}\" is not supported; use UTF8"
                        )));
                    }
                    "statement_timeout"
                    | "lock_timeout"
                    | "idle_in_transaction_session_timeout"
                        if parse_duration_setting(&value).is_none() =>
                    {
                        return Err(SqlError::new(
                            sqlstate::INVALID_PARAMETER_VALUE,
                            format!("invalid value for parameter \"{name}\": \"{value}\""),
                        )
                        .with_hint(format!(
                            "give a number of milliseconds from 0 to {MAX_TIMEOUT_MS}, or one with \
                             a unit (us, ms, s, min, h, d)"
                        )));
                    }
                    "server_version"
                    | "server_version_num"
                    | "server_encoding"
                    | "integer_datetimes"
                    | "transaction_isolation"
                    | "transaction_read_only" => {
                        return Err(SqlError::new(
                            "55P02",
                            format!("parameter \"{name}\" cannot be changed"),
                        ));
                    }
                    "default_transaction_isolation"
                        if value.to_ascii_lowercase().contains("serializable") =>
                    {
                        return Err(SqlError::unsupported(
                            "SERIALIZABLE isolation is not supported; use REPEATABLE READ",
                        ));
                    }
                    _ => {}
                }
                self.inner.lock().vars.insert(name, value);
                done()
            }
            Set::SetTimeZone { value, .. } => {
                let v = value_text(value);
                if !is_utc(&v) {
                    return Err(SqlError::unsupported(format!(
                        "time zone \"{v}\" is not supported; sessions run in UTC"
                    )));
                }
                self.inner.lock().vars.insert("timezone", "UTC".into());
                done()
            }
            Set::SetNames { charset_name, .. } => {
                if !matches!(
                    charset_name.value.to_ascii_uppercase().as_str(),
                    "UTF8" | "UTF-8" | "UNICODE"
                ) {
                    return Err(SqlError::unsupported("only UTF8 is supported"));
                }
                done()
            }
            Set::SetTransaction {
                modes,
                session,
                snapshot,
            } => {
                if snapshot.is_some() {
                    return Err(SqlError::unsupported(
                        "SET TRANSACTION SNAPSHOT is not supported",
                    ));
                }
                let read_only = check_isolation(modes)?;
                let mut inner = self.inner.lock();
                if let (Some(ro), TxnState::Open { read_only, .. }) = (read_only, &mut inner.txn) {
                    *read_only = ro;
                }
                if *session && let Some(ro) = read_only {
                    inner.vars.insert(
                        "default_transaction_read_only",
                        if ro { "on" } else { "off" }.into(),
                    );
                }
                done()
            }
            other => Err(SqlError::unsupported(format!("{other} is not supported"))),
        }
    }

    fn show(&self, variable: &[ast::Ident]) -> SqlResult<StatementOutput> {
        let raw = variable
            .iter()
            .map(|i| i.value.clone())
            .collect::<Vec<_>>()
            .join(" ");
        let inner = self.inner.lock();
        if raw.eq_ignore_ascii_case("all") {
            let schema = Arc::new(Schema::new(vec![
                Field::new("name", DataType::Utf8, false),
                Field::new("setting", DataType::Utf8, false),
            ]));
            let names: Vec<&str> = inner.vars.keys().copied().collect();
            let values: Vec<String> = inner.vars.values().cloned().collect();
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(names)),
                    Arc::new(StringArray::from(values)),
                ],
            )
            .map_err(|e| SqlError::internal(e.to_string()))?;
            drop(inner);
            return rows_of(schema, vec![batch]);
        }
        let key = if raw.eq_ignore_ascii_case("transaction isolation level") {
            "transaction_isolation"
        } else if raw.eq_ignore_ascii_case("time zone") {
            "timezone"
        } else {
            setting_name(&raw).ok_or_else(|| {
                SqlError::new(
                    sqlstate::UNDEFINED_OBJECT,
                    format!("unrecognized configuration parameter \"{raw}\""),
                )
            })?
        };
        let value = inner.vars.get(key).cloned().unwrap_or_default();
        drop(inner);
        one_column_rows(key, vec![value])
    }

    /// Collects a statement's rows (for tests and internal callers).
    pub async fn query(&self, sql: &str) -> SqlResult<Vec<RecordBatch>> {
        self.begin_statement();
        let stmts = self.parse(sql).await?;
        let mut out = Vec::new();
        for stmt in &stmts {
            self.begin_statement();
            if let StatementOutput::Rows(mut stream) = self.execute(stmt, None).await? {
                while let Some(batch) = stream.next().await {
                    out.push(batch?);
                }
            }
        }
        Ok(out)
    }
}

/// Collects at most `limit` bytes of formatted text, then fails the
/// formatting so a long statement is never printed in full.
struct Prefix {
    text: String,
    limit: usize,
}

impl std::fmt::Write for Prefix {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = self.limit.saturating_sub(self.text.len());
        if s.len() <= room {
            self.text.push_str(s);
            return Ok(());
        }
        let mut end = room;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.text.push_str(&s[..end]);
        Err(std::fmt::Error)
    }
}

/// The first `limit` bytes of `stmt` as SQL text.
pub fn statement_prefix(stmt: &Statement, limit: usize) -> String {
    use std::fmt::Write;
    let mut out = Prefix {
        text: String::new(),
        limit,
    };
    let _ = write!(out, "{stmt}");
    out.text
}

/// A short name of the statement's kind, for messages.
pub fn statement_kind(stmt: &Statement) -> String {
    let text = statement_prefix(stmt, 64);
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    match words.as_slice() {
        [a, b] if matches!(a.to_ascii_uppercase().as_str(), "CREATE" | "DROP" | "ALTER") => {
            format!("{} {}", a.to_ascii_uppercase(), b.to_ascii_uppercase())
        }
        [a, ..] => a.to_ascii_uppercase(),
        [] => "statement".into(),
    }
}
