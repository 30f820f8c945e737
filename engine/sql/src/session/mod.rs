//! [`Session`]: one client connection's transaction state, settings and
//! statement execution.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::execute_stream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::sql::sqlparser::ast::{Set, Statement};
use futures::StreamExt;
use holo_kv::Transaction;
use parking_lot::Mutex;

use crate::catalog::lease::SchemaPin;
use crate::catalog::provider::TxnSlot;
use crate::engine::SqlEngine;
use crate::error::{SqlError, SqlResult, sqlstate};
use crate::exec::dml::execute_dml;
use crate::exec::fast::{FastOutput, FastPlan};
use crate::interrupt::Interrupt;
use crate::interruptible::interruptible;
use crate::planner::PlanContext;
use crate::sequences::udfs::SessionSequences;

mod explain;
mod output;
mod prepare;
mod returning;
mod schema;
mod settings;
mod supported;
mod text;
mod txn_control;

pub use output::StatementOutput;
use output::{dml_tag, is_dml, rows_of, stream_of};
use prepare::Planned;
pub use prepare::{Described, PreparedStatement};
use settings::Settings;
pub use settings::parse_duration_setting;
use supported::check_supported;
pub use text::{statement_kind, statement_prefix};
use txn_control::TxnState;
pub use txn_control::TxnStatus;

struct Inner {
    txn: TxnState,
    settings: Settings,
}

/// `result` with `pin` held until its rows are consumed (a statement's
/// rows stream after it returned).
fn holding(
    result: SqlResult<StatementOutput>,
    pin: Option<SchemaPin>,
) -> SqlResult<StatementOutput> {
    match (result, pin) {
        (Ok(StatementOutput::Rows(stream)), Some(pin)) => {
            let schema = stream.schema();
            let rows = stream.map(move |batch| {
                let _held = &pin;
                batch
            });
            Ok(StatementOutput::Rows(Box::pin(
                RecordBatchStreamAdapter::new(schema, rows),
            )))
        }
        (result, _) => result,
    }
}

/// One client connection's SQL session.
pub struct Session {
    engine: Arc<SqlEngine>,
    state: Arc<SessionState>,
    /// This session's `nextval`, `currval`, `setval` and `lastval`.
    sequence_fns: Vec<Arc<datafusion::logical_expr::ScalarUDF>>,
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
    /// A new session of `engine` (one per client connection).
    pub fn new(engine: &Arc<SqlEngine>) -> Session {
        Session::from_state(engine.clone(), engine.base_context().state())
    }

    fn from_state(engine: Arc<SqlEngine>, base: SessionState) -> Session {
        let slot = Arc::new(TxnSlot::default());
        let config = base.config().clone().with_extension(slot.clone());
        let mut state = SessionStateBuilder::new_from_existing(base)
            .with_config(config)
            .build();
        let sequence_fns = crate::sequences::udfs::functions(
            engine.catalog(),
            Some(Arc::new(SessionSequences::default())),
        );
        for f in &sequence_fns {
            // Replaces the engine's instance of the same name.
            let _ = datafusion::execution::FunctionRegistry::register_udf(&mut state, f.clone());
        }
        Session {
            engine,
            sequence_fns,
            state: Arc::new(interruptible(state)),
            slot,
            interrupt: Mutex::new(Interrupt::none()),
            inner: Mutex::new(Inner {
                txn: TxnState::Idle,
                settings: Settings::default(),
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

    /// The `extra_float_digits` setting (-15 to 3).
    pub fn extra_float_digits(&self) -> i8 {
        self.inner.lock().settings.extra_float_digits()
    }

    /// The `statement_timeout` setting, when set.
    pub fn statement_timeout(&self) -> Option<Duration> {
        self.inner.lock().settings.statement_timeout()
    }

    /// Marks an open transaction block as failed (after an error the caller
    /// saw while streaming rows, or a cancellation).
    pub fn fail_transaction(&self) {
        let mut inner = self.inner.lock();
        if matches!(inner.txn, TxnState::Open { .. }) {
            inner.txn = TxnState::Aborted;
        }
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

    /// Plans `stmt` logically on the planner pool. The sequence functions
    /// of a write's column defaults (planned in the catalog's context)
    /// become this session's, for `currval`; queries name the session's
    /// own already.
    pub(crate) async fn plan(&self, stmt: &Statement) -> SqlResult<LogicalPlan> {
        let plan = self.planning().logical(stmt).await?;
        match plan {
            LogicalPlan::Dml(_) => SessionSequences::adopt(&self.sequence_fns, plan),
            plan => Ok(plan),
        }
    }

    /// Runs one statement, with `params` bound to its placeholders.
    pub async fn execute(
        &self,
        stmt: &Statement,
        params: Option<ParamValues>,
    ) -> SqlResult<StatementOutput> {
        let pin = self.pin_for(stmt);
        let result = self.execute_inner(stmt, None, params).await;
        self.count_failure(&result);
        holding(result, pin)
    }

    /// The schema pin a statement that reads or writes table data holds
    /// until it ends (DDL reads descriptors from the store and waits for
    /// pins itself, so it holds none).
    fn pin_for(&self, stmt: &Statement) -> Option<SchemaPin> {
        matches!(
            stmt,
            Statement::Query(_)
                | Statement::Insert(_)
                | Statement::Update(_)
                | Statement::Delete(_)
                | Statement::Explain { .. }
        )
        .then(|| self.engine.catalog().pin())
    }

    /// Runs a prepared statement, reusing its plan while the catalog is
    /// unchanged.
    pub async fn execute_prepared(
        &self,
        prepared: &PreparedStatement,
        params: Option<ParamValues>,
    ) -> SqlResult<StatementOutput> {
        // Pinned before the plan's catalog version is compared, so the
        // plan's descriptors are never older than the pin.
        let pin = self.pin_for(&prepared.stmt);
        let planned = prepared
            .planned
            .as_ref()
            .filter(|p| p.catalog_version == self.engine.catalog().version());
        let result = self.execute_inner(&prepared.stmt, planned, params).await;
        self.count_failure(&result);
        holding(result, pin)
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
        if let Some(marker) = holo_kv::failpoint::value("sql::statement")
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
                TxnState::Open { txn, read_only, .. } => (Some(txn.clone()), false, *read_only),
                TxnState::Idle => (None, true, inner.settings.default_read_only()),
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
                sqlstate::READ_ONLY_SQL_TRANSACTION,
                "cannot execute a write in a read-only transaction",
            ));
        }
        let result = match planned {
            Some(p) => {
                self.run_plan(
                    &p.plan,
                    p.fast.as_ref(),
                    p.returning.as_ref(),
                    params,
                    &txn,
                    autocommit,
                )
                .await
            }
            None => self.run(stmt, params, &txn, autocommit).await,
        };
        if result.is_err() && !autocommit {
            self.fail_transaction();
        }
        result
    }

    async fn run(
        &self,
        stmt: &Statement,
        params: Option<ParamValues>,
        txn: &Arc<Transaction>,
        autocommit: bool,
    ) -> SqlResult<StatementOutput> {
        check_supported(stmt)?;
        match stmt {
            Statement::Query(_)
            | Statement::Insert(_)
            | Statement::Update(_)
            | Statement::Delete(_) => {
                let p = self.plan_statement(stmt).await?;
                self.run_plan(
                    &p.plan,
                    p.fast.as_ref(),
                    p.returning.as_ref(),
                    params,
                    txn,
                    autocommit,
                )
                .await
            }
            Statement::CreateTable(_)
            | Statement::CreateSequence { .. }
            | Statement::CreateIndex(_)
            | Statement::AlterTable(_)
            | Statement::Analyze(_)
            | Statement::Drop { .. }
            | Statement::Call(_) => self.run_schema(stmt, params, autocommit).await,
            Statement::Explain {
                statement, analyze, ..
            } => self.explain(stmt, statement, *analyze, params, txn).await,
            Statement::Set(Set::SetTransaction {
                modes,
                session,
                snapshot,
            }) => self.set_transaction(modes, *session, snapshot.is_some()),
            Statement::Set(set) => self.inner.lock().settings.set(set),
            Statement::Reset(reset) => self.inner.lock().settings.reset(&reset.reset),
            Statement::ShowVariable { variable } => self.inner.lock().settings.show(variable),
            Statement::Discard { .. } => {
                self.require_autocommit(autocommit, "DISCARD ALL")?;
                self.inner.lock().settings = Settings::default();
                Ok(StatementOutput::done("DISCARD ALL"))
            }
            other => Err(SqlError::unsupported(format!(
                "{} is not supported",
                statement_kind(other)
            ))),
        }
    }

    /// Runs a planned query or DML statement: on its fast path when it has
    /// one (and its table is unchanged), otherwise through DataFusion.
    /// `returning` is a DML statement's planned RETURNING list.
    async fn run_plan(
        &self,
        plan: &LogicalPlan,
        fast: Option<&FastPlan>,
        returning: Option<&LogicalPlan>,
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
            if current.is_some_and(|t| Arc::ptr_eq(&t, fast.entry()))
                && fast.runs_at(txn.start_ts())
            {
                let out = fast
                    .execute(&self.state, txn, params.as_ref(), !autocommit)
                    .await?;
                return match out {
                    FastOutput::Rows(batch) => rows_of(batch.schema(), vec![batch]),
                    FastOutput::Written(rows) => {
                        self.engine
                            .catalog()
                            .note_writes(fast.entry().desc.id, rows);
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
        let plan = self.bind(plan.clone(), params.clone())?;
        match plan {
            LogicalPlan::Dml(dml) => {
                let mut written = returning.map(|_| Vec::new());
                self.slot.set(Some(txn.clone()));
                let rows = execute_dml(
                    &self.planning(),
                    txn,
                    self.engine.catalog(),
                    &dml,
                    !autocommit,
                    written.as_mut(),
                )
                .await;
                self.slot.set(None);
                let rows = rows?;
                // The RETURNING rows are computed before the commit: an
                // error in them fails the statement, writes and all.
                let returned = match (returning, written) {
                    (Some(list), Some(written)) => {
                        let list = self.bind(returning::over_rows(list, written)?, params)?;
                        let physical = self.physical_plan(&list, txn).await?;
                        let schema = physical.schema();
                        let batches =
                            datafusion::physical_plan::collect(physical, self.state.task_ctx())
                                .await?;
                        Some((schema, batches))
                    }
                    _ => None,
                };
                if autocommit {
                    self.commit_txn(txn).await?;
                }
                let tag = dml_tag(&dml.op).to_string();
                Ok(match returned {
                    Some((schema, batches)) => StatementOutput::Returned {
                        tag,
                        rows: stream_of(schema, batches),
                    },
                    None => StatementOutput::Command {
                        tag,
                        rows: Some(rows),
                    },
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
    pub(crate) async fn physical_plan(
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

    pub(crate) fn bind(
        &self,
        plan: LogicalPlan,
        params: Option<ParamValues>,
    ) -> SqlResult<LogicalPlan> {
        match params {
            Some(p) => Ok(plan.with_param_values(p)?),
            None => Ok(plan),
        }
    }

    /// Collects a statement's rows (for tests and internal callers).
    pub async fn query(&self, sql: &str) -> SqlResult<Vec<RecordBatch>> {
        self.begin_statement();
        let stmts = self.parse(sql).await?;
        let mut out = Vec::new();
        for stmt in &stmts {
            self.begin_statement();
            if let StatementOutput::Rows(mut stream)
            | StatementOutput::Returned {
                rows: mut stream, ..
            } = self.execute(stmt, None).await?
            {
                while let Some(batch) = stream.next().await {
                    out.push(batch?);
                }
            }
        }
        Ok(out)
    }
}
