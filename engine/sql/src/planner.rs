//! [`Planner`]: a small pool of large-stack threads where statements are
//! parsed and planned. Parsing and planning are CPU-bound and recursive:
//! run on the async workers, a costly statement would stall every other
//! task of the node (Raft heartbeats among them) and could not be stopped
//! by a timeout or cancel request. Here the async side only awaits the
//! result, so a timeout or cancel answers at once, the job sees its
//! [`Interrupt`] at its next check, and the pool's size caps how much of
//! the machine planning can take.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc;

use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;
use parking_lot::Mutex;

use crate::error::{SqlError, SqlResult};
use crate::interrupt::{self, CancelOnDrop, Interrupt};
use crate::limits::PLANNER_STACK_BYTES;

type Job = Box<dyn FnOnce() + Send>;

/// The planning pool of a node.
pub struct Planner {
    jobs: mpsc::Sender<Job>,
    threads: usize,
}

impl std::fmt::Debug for Planner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planner")
            .field("threads", &self.threads)
            .finish()
    }
}

/// The text of a panic's payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

impl Planner {
    /// A pool of `threads` threads (at least one).
    pub fn new(threads: usize) -> std::io::Result<Planner> {
        let threads = threads.max(1);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("holo-plan-{i}"))
                .stack_size(PLANNER_STACK_BYTES)
                .spawn(move || {
                    loop {
                        let job = rx.lock().recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(Planner { jobs: tx, threads })
    }

    /// Runs `f` on a planner thread with `interrupt` current there. A panic
    /// in `f` is caught and answered as XX000; dropping the returned future
    /// cancels `interrupt`.
    pub async fn run<T, F>(&self, interrupt: &Arc<Interrupt>, f: F) -> SqlResult<T>
    where
        T: Send + 'static,
        F: FnOnce() -> SqlResult<T> + Send + 'static,
    {
        interrupt.check()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job_interrupt = interrupt.clone();
        let job: Job = Box::new(move || {
            let result = match job_interrupt.check() {
                Err(e) => Err(e),
                Ok(()) => std::panic::catch_unwind(AssertUnwindSafe(|| {
                    interrupt::with_current(&job_interrupt, f)
                }))
                .unwrap_or_else(|payload| {
                    let msg = panic_message(payload.as_ref());
                    tracing::error!(panic = %msg, "panic while parsing or planning a statement");
                    Err(SqlError::internal(format!(
                        "internal error while planning the statement: {msg}"
                    )))
                }),
            };
            let _ = tx.send(result);
        });
        self.jobs
            .send(job)
            .map_err(|_| SqlError::internal("the planner pool has stopped"))?;
        let guard = CancelOnDrop::new(interrupt);
        let result = rx
            .await
            .map_err(|_| SqlError::internal("the planner pool dropped a statement"))?;
        guard.disarm();
        result
    }

    /// Runs the future `fut` to completion on a planner thread (driving it
    /// with the calling runtime's handle), as [`Planner::run`] does.
    pub async fn run_future<T, Fut>(&self, interrupt: &Arc<Interrupt>, fut: Fut) -> SqlResult<T>
    where
        T: Send + 'static,
        Fut: Future<Output = SqlResult<T>> + Send + 'static,
    {
        let handle = tokio::runtime::Handle::current();
        self.run(interrupt, move || handle.block_on(fut)).await
    }
}

/// What a session plans with: its DataFusion state, the node's planner
/// pool and the running statement's interrupt.
#[derive(Clone)]
pub struct PlanContext {
    /// The session's DataFusion state.
    pub state: Arc<SessionState>,
    planner: Arc<Planner>,
    interrupt: Arc<Interrupt>,
}

impl std::fmt::Debug for PlanContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanContext").finish_non_exhaustive()
    }
}

impl PlanContext {
    /// A context planning with `state` on `planner` under `interrupt`.
    pub fn new(
        state: Arc<SessionState>,
        planner: Arc<Planner>,
        interrupt: Arc<Interrupt>,
    ) -> PlanContext {
        PlanContext {
            state,
            planner,
            interrupt,
        }
    }

    /// The statement's logical plan.
    pub async fn logical(&self, stmt: &Statement) -> SqlResult<LogicalPlan> {
        let state = self.state.clone();
        if let Statement::Insert(ins) = stmt
            && crate::insert_plan::takes(ins)
        {
            let ins = ins.clone();
            return self
                .planner
                .run_future(&self.interrupt, async move {
                    crate::insert_plan::plan(&state, &ins).await
                })
                .await;
        }
        let stmt = DfStatement::Statement(Box::new(stmt.clone()));
        self.planner
            .run_future(&self.interrupt, async move {
                Ok(state.statement_to_plan(stmt).await?)
            })
            .await
    }

    /// The physical plan of `plan`.
    pub async fn physical(&self, plan: &LogicalPlan) -> SqlResult<Arc<dyn ExecutionPlan>> {
        let state = self.state.clone();
        let plan = plan.clone();
        self.planner
            .run_future(&self.interrupt, async move {
                Ok(state.create_physical_plan(&plan).await?)
            })
            .await
    }
}
