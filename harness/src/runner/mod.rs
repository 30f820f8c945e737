//! Runs a workload on a target: setup, load, measured phases, checks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, GenericClient, SimpleQueryMessage, Statement};

use crate::error::HarnessError;
use crate::metrics::ClientStats;
use crate::params::{Generators, Value, generators};
use crate::spec::{Flavor, Operation, Phase, Vars, Workload};
use crate::target::Target;

mod checks;
mod ops;
mod phase;
mod prepare;
mod worker;

pub use checks::first_value;
use checks::*;
use ops::*;
use phase::*;
use prepare::*;
use worker::*;

/// Error category of an operation whose result did not match `expect`.
pub const CHECK_FAILED: &str = "expect_mismatch";
/// Error category of a statement that affected the wrong number of rows.
pub const ROWS_MISMATCH: &str = "rows_mismatch";
/// Error category of a failure without SQLSTATE (connection lost, I/O).
pub const CONNECTION: &str = "connection";

/// Run-time overrides from the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Hides the progress bar.
    pub quiet: bool,
}

/// The outcome of one phase.
pub struct PhaseResult {
    /// Phase name.
    pub name: String,
    /// Measured wall time (after warm-up).
    pub measured: Duration,
    /// Clients.
    pub concurrency: usize,
    /// Target rate, if any.
    pub rate: Option<f64>,
    /// Merged statistics.
    pub stats: ClientStats,
    /// Operations not run on this target, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// The result of an end-of-run check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckResult {
    /// Check name.
    pub name: String,
    /// The query.
    pub sql: String,
    /// Expected value (substituted).
    pub expected: String,
    /// Observed value or error.
    pub observed: String,
    /// Whether it passed.
    pub passed: bool,
}

/// Everything a run produced.
pub struct RunResult {
    /// Time spent in setup and load.
    pub prepare_time: Duration,
    /// Phases in order.
    pub phases: Vec<PhaseResult>,
    /// Checks in order.
    pub checks: Vec<CheckResult>,
    /// Checks skipped on this target, with the reason.
    pub skipped_checks: Vec<(String, String)>,
}

fn sql_err(stage: &str, sql: &str, e: &tokio_postgres::Error) -> HarnessError {
    HarnessError::Sql {
        stage: stage.to_string(),
        sql: sql.chars().take(200).collect(),
        reason: describe_error(e),
    }
}

/// `SQLSTATE: message` of a database error.
pub fn describe_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{}: {} DETAIL: {detail}", db.code().code(), db.message()),
            None => format!("{}: {}", db.code().code(), db.message()),
        },
        None => e.to_string(),
    }
}

/// Runs `workload` on `target`.
pub async fn run(
    target: Arc<Target>,
    workload: &Workload,
    vars: &Vars,
    opts: &RunOptions,
    interrupted: Arc<AtomicBool>,
) -> Result<RunResult, HarnessError> {
    let t0 = Instant::now();
    prepare(&target, workload, vars, opts.quiet).await?;
    let prepare_time = t0.elapsed();
    let gens = Arc::new(
        generators(&workload.params, vars).map_err(|r| HarnessError::Spec {
            file: "workload".into(),
            field: "params".into(),
            reason: r,
        })?,
    );
    let mut phases = Vec::new();
    for (i, phase) in workload.phases.iter().enumerate() {
        if interrupted.load(Ordering::Relaxed) {
            return Err(HarnessError::Interrupted);
        }
        let ctx = RunContext {
            target: &target,
            workload,
            vars,
            gens: &gens,
            opts,
            interrupted: &interrupted,
        };
        phases.push(run_phase(&ctx, phase, i).await?);
    }
    let (checks, skipped_checks) = checks::run_checks(&target, workload, vars, &phases).await?;
    Ok(RunResult {
        prepare_time,
        phases,
        checks,
        skipped_checks,
    })
}
