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
use crate::spec::{Flavor, Operation, Phase, Vars, Workload, parse_duration};
use crate::target::Target;

/// Error category of an operation whose result did not match `expect`.
pub const CHECK_FAILED: &str = "expect_mismatch";
/// Error category of a statement that affected the wrong number of rows.
pub const ROWS_MISMATCH: &str = "rows_mismatch";
/// Error category of a failure without SQLSTATE (connection lost, I/O).
pub const CONNECTION: &str = "connection";

/// Run-time overrides from the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Replaces every phase's duration.
    pub duration: Option<Duration>,
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
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// The first column of the first row of a simple query, as text.
pub async fn first_value(
    client: &Client,
    sql: &str,
) -> Result<Option<String>, tokio_postgres::Error> {
    for msg in client.simple_query(sql).await? {
        if let SimpleQueryMessage::Row(row) = msg {
            return Ok(row.get(0).map(str::to_string));
        }
    }
    Ok(None)
}

fn values_equal(expected: &str, observed: &str) -> bool {
    if expected.trim() == observed.trim() {
        return true;
    }
    match (
        expected.trim().parse::<f64>(),
        observed.trim().parse::<f64>(),
    ) {
        (Ok(a), Ok(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
        _ => false,
    }
}

/// Runs setup SQL and load steps.
async fn prepare(
    target: &Target,
    workload: &Workload,
    vars: &Vars,
    quiet: bool,
) -> Result<(), HarnessError> {
    let client = target.connect(0).await?;
    let none = BTreeMap::new();
    for sql in &workload.setup {
        let sql = vars.substitute(sql, &none).map_err(|r| HarnessError::Sql {
            stage: "setup".into(),
            sql: sql.clone(),
            reason: r,
        })?;
        client
            .batch_execute(&sql)
            .await
            .map_err(|e| sql_err("setup", &sql, &e))?;
    }
    for step in &workload.load {
        let rows = vars.int(&step.rows).map_err(|r| HarnessError::Sql {
            stage: "load".into(),
            sql: step.sql.clone(),
            reason: r,
        })?;
        let batch = match &step.batch {
            Some(b) => vars.int(b).map_err(|r| HarnessError::Sql {
                stage: "load".into(),
                sql: step.sql.clone(),
                reason: r,
            })?,
            None => rows.max(1),
        };
        let bar = progress(quiet, rows as u64, "load");
        let mut start = 1i64;
        while start <= rows {
            let end = (start + batch - 1).min(rows);
            let mut extra = BTreeMap::new();
            extra.insert("start".to_string(), start.to_string());
            extra.insert("end".to_string(), end.to_string());
            let sql = vars
                .substitute(
                    &step
                        .sql
                        .replace("{start}", "${start}")
                        .replace("{end}", "${end}"),
                    &extra,
                )
                .map_err(|r| HarnessError::Sql {
                    stage: "load".into(),
                    sql: step.sql.clone(),
                    reason: r,
                })?;
            client
                .batch_execute(&sql)
                .await
                .map_err(|e| sql_err("load", &sql, &e))?;
            bar.inc((end - start + 1) as u64);
            start = end + 1;
        }
        bar.finish_and_clear();
    }
    Ok(())
}

fn progress(quiet: bool, len: u64, what: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let style =
        ProgressStyle::with_template("{prefix:>8} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(what.to_string());
    bar
}

/// An operation ready to execute on one connection.
struct PreparedOp {
    op: Operation,
    /// Per statement: the prepared statement, or the SQLSTATE preparing failed with.
    statements: Vec<Result<Statement, String>>,
    sql: Vec<String>,
    expect: Option<String>,
    expect_rows: Vec<Option<u64>>,
    /// Distinct parameter names used by the operation.
    param_names: Vec<String>,
    /// Per statement: generators substituted into the SQL text (`{name}`);
    /// such statements run over the simple protocol.
    inline: Vec<Vec<String>>,
}

/// The generator names written as `{name}` in `sql`.
pub fn inline_params(sql: &str, names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| sql.contains(&format!("{{{n}}}")))
        .cloned()
        .collect()
}

fn render_inline(sql: &str, names: &[String], values: &BTreeMap<String, Value>) -> String {
    let mut out = sql.to_string();
    for n in names {
        if let Some(v) = values.get(n) {
            out = out.replace(&format!("{{{n}}}"), &v.to_string());
        }
    }
    out
}

/// The row count of the last command of a simple query.
fn command_rows(messages: Vec<SimpleQueryMessage>) -> u64 {
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(n),
            _ => None,
        })
        .last()
        .unwrap_or(0)
}

async fn prepare_ops(
    client: &Client,
    ops: &[Operation],
    vars: &Vars,
    generator_names: &[String],
) -> Result<Vec<PreparedOp>, String> {
    let none = BTreeMap::new();
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let steps = op.statements();
        let mut statements = Vec::new();
        let mut sql = Vec::new();
        let mut expect_rows = Vec::new();
        let mut param_names = Vec::new();
        let mut inline = Vec::new();
        for step in &steps {
            let text = vars.substitute(&step.sql, &none)?;
            let names = inline_params(&text, generator_names);
            let stmt = if op.expect.is_some() || !names.is_empty() {
                Err(String::new())
            } else {
                client.prepare(&text).await.map_err(|e| error_code(&e))
            };
            for n in &names {
                if !param_names.contains(n) {
                    param_names.push(n.clone());
                }
            }
            inline.push(names);
            statements.push(stmt);
            sql.push(text);
            expect_rows.push(match &step.expect_rows {
                Some(n) => Some(vars.int(n)? as u64),
                None => None,
            });
            for p in &step.params {
                if !param_names.contains(p) {
                    param_names.push(p.clone());
                }
            }
        }
        let expect = match &op.expect {
            Some(e) => Some(vars.substitute(e, &none)?),
            None => None,
        };
        out.push(PreparedOp {
            op: op.clone(),
            statements,
            sql,
            expect,
            expect_rows,
            param_names,
            inline,
        });
    }
    Ok(out)
}

fn error_code(e: &tokio_postgres::Error) -> String {
    match e.code() {
        Some(c) => c.code().to_string(),
        None => CONNECTION.to_string(),
    }
}

/// Executes one operation once (all its statements); `Ok(rows)` or the
/// error category.
async fn execute_once(
    client: &mut Client,
    p: &PreparedOp,
    values: &BTreeMap<String, Value>,
) -> Result<u64, String> {
    if let Some(expected) = &p.expect {
        let observed = first_value(client, &p.sql[0])
            .await
            .map_err(|e| error_code(&e))?;
        return match observed {
            Some(o) if values_equal(expected, &o) => Ok(1),
            _ => Err(CHECK_FAILED.to_string()),
        };
    }
    if p.op.transaction {
        let tx = client.transaction().await.map_err(|e| error_code(&e))?;
        let rows = run_steps(&tx, p, values).await?;
        tx.commit().await.map_err(|e| error_code(&e))?;
        Ok(rows)
    } else {
        run_steps(client, p, values).await
    }
}

/// Runs the statements of `p` on `client` (a connection or a transaction).
async fn run_steps(
    client: &impl GenericClient,
    p: &PreparedOp,
    values: &BTreeMap<String, Value>,
) -> Result<u64, String> {
    let mut rows = 0;
    for (i, step) in p.op.statements().iter().enumerate() {
        let n = if p.inline[i].is_empty() {
            let stmt = p.statements[i].as_ref().map_err(Clone::clone)?;
            let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = step
                .params
                .iter()
                .map(|n| &values[n] as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            client
                .execute(stmt, &params)
                .await
                .map_err(|e| error_code(&e))?
        } else {
            let sql = render_inline(&p.sql[i], &p.inline[i], values);
            command_rows(
                client
                    .simple_query(&sql)
                    .await
                    .map_err(|e| error_code(&e))?,
            )
        };
        if p.expect_rows[i].is_some_and(|e| e != n) {
            return Err(ROWS_MISMATCH.to_string());
        }
        rows += n;
    }
    Ok(rows)
}

struct Shared {
    stop: AtomicBool,
    issued: AtomicU64,
    done: AtomicU64,
    errors: AtomicU64,
}

/// What every client of a phase shares.
struct PhaseContext {
    target: Arc<Target>,
    ops: Vec<Operation>,
    vars: Vars,
    gens: Arc<Generators>,
    seed: u64,
    schedule: Schedule,
    shared: Arc<Shared>,
    ready: Arc<tokio::sync::Barrier>,
}

async fn worker(index: usize, ctx: Arc<PhaseContext>) -> Result<ClientStats, HarnessError> {
    let PhaseContext {
        target,
        ops,
        vars,
        gens,
        seed,
        schedule,
        shared,
        ready,
    } = ctx.as_ref();
    let (seed, schedule) = (*seed, *schedule);
    let mut client = target.connect(index).await?;
    let generator_names: Vec<String> = gens.keys().cloned().collect();
    let mut prepared = prepare_ops(&client, ops, vars, &generator_names)
        .await
        .map_err(|r| HarnessError::Spec {
            file: "workload".into(),
            field: "ops".into(),
            reason: r,
        })?;
    let weights: Vec<u32> = prepared.iter().map(|p| p.op.weight).collect();
    let total_weight: u32 = weights.iter().sum();
    let mut rng = StdRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut stats = ClientStats::default();
    ready.wait().await;
    let phase_start = Instant::now();
    let measure_from = phase_start + schedule.warmup;
    let end = schedule.duration.map(|d| measure_from + d);
    // Rate limiting: this client's share of the rate, offset by its index.
    let interval = schedule
        .rate
        .map(|r| Duration::from_secs_f64(schedule.concurrency as f64 / r));
    let mut next_start = phase_start
        + interval.map_or(Duration::ZERO, |i| {
            i.mul_f64(index as f64 / schedule.concurrency as f64)
        });
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let now = Instant::now();
        if end.is_some_and(|e| now >= e) {
            break;
        }
        let measured = now >= measure_from;
        if measured
            && let Some(limit) = schedule.operations
            && shared.issued.fetch_add(1, Ordering::Relaxed) >= limit
        {
            break;
        }
        let mut pick = rng.random_range(0..total_weight);
        let mut which = 0;
        while pick >= weights[which] {
            pick -= weights[which];
            which += 1;
        }
        // A statement whose preparation failed (e.g. a schema change not yet
        // visible on this node) is prepared again before each use, so one
        // transient failure does not fail the operation for the whole run.
        for i in 0..prepared[which].statements.len() {
            if prepared[which].inline[i].is_empty()
                && matches!(&prepared[which].statements[i], Err(code) if !code.is_empty())
            {
                prepared[which].statements[i] = client
                    .prepare(&prepared[which].sql[i])
                    .await
                    .map_err(|e| error_code(&e));
            }
        }
        let p = &prepared[which];
        let values: BTreeMap<String, Value> = p
            .param_names
            .iter()
            .filter_map(|n| gens.get(n).map(|g| (n.clone(), g.draw(&mut rng))))
            .collect();
        let started = match interval {
            Some(i) => {
                let intended = next_start;
                next_start += i;
                if intended > Instant::now() {
                    tokio::time::sleep_until(intended.into()).await;
                }
                intended
            }
            None => Instant::now(),
        };
        let attempts = p.op.attempts();
        let mut retries = 0u64;
        let outcome = loop {
            match execute_once(&mut client, p, &values).await {
                Ok(rows) => break Ok(rows),
                Err(code) if p.op.retry_on.contains(&code) && (retries as u32 + 1) < attempts => {
                    retries += 1;
                    let backoff = rng.random_range(1..=(2u64 << retries.min(6)));
                    tokio::time::sleep(Duration::from_millis(backoff)).await;
                }
                Err(code) => break Err(code),
            }
        };
        let finished = Instant::now();
        if started >= measure_from {
            let second = finished.saturating_duration_since(measure_from).as_secs() as usize;
            match &outcome {
                Ok(rows) => stats.record_ok(&p.op.name, finished - started, *rows, retries, second),
                Err(code) => {
                    stats.record_err(&p.op.name, code, retries, second);
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            shared.done.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.record_warmup(&p.op.name, outcome.as_ref().ok().copied());
        }
        if let Err(code) = &outcome
            && code == CONNECTION
            && client.is_closed()
        {
            // The server went away: reconnect (and re-prepare) before going on.
            match target.connect(index).await {
                Ok(c) => {
                    client = c;
                    if let Ok(again) = prepare_ops(&client, ops, vars, &generator_names).await {
                        prepared = again;
                    }
                }
                Err(_) => break,
            }
        }
    }
    Ok(stats)
}

#[derive(Debug, Clone, Copy)]
struct Schedule {
    warmup: Duration,
    duration: Option<Duration>,
    operations: Option<u64>,
    rate: Option<f64>,
    concurrency: usize,
}

/// What every phase of a run shares.
struct RunContext<'a> {
    target: &'a Arc<Target>,
    workload: &'a Workload,
    vars: &'a Vars,
    gens: &'a Arc<Generators>,
    opts: &'a RunOptions,
    interrupted: &'a Arc<AtomicBool>,
}

async fn run_phase(
    run: &RunContext<'_>,
    phase: &Phase,
    phase_index: usize,
) -> Result<PhaseResult, HarnessError> {
    let RunContext {
        target,
        workload,
        vars,
        gens,
        opts,
        interrupted,
    } = *run;
    let flavor = target.info.flavor;
    let mut skipped = Vec::new();
    let ops: Vec<Operation> = phase
        .ops
        .iter()
        .filter(|op| {
            let applies = op.applies_to(flavor);
            if !applies {
                skipped.push((
                    op.name.clone(),
                    format!("not applicable to {flavor:?} targets"),
                ));
            }
            applies
        })
        .cloned()
        .collect();
    let warmup = match &phase.warmup {
        Some(w) => parse_duration(w).map_err(|r| spec_err(phase_index, "warmup", r))?,
        None => Duration::ZERO,
    };
    let duration = match (opts.duration, &phase.duration) {
        (Some(d), _) => Some(d),
        (None, Some(d)) => {
            Some(parse_duration(d).map_err(|r| spec_err(phase_index, "duration", r))?)
        }
        (None, None) => None,
    };
    let operations = match (&phase.operations, duration) {
        (Some(n), None) => Some(
            vars.int(n)
                .map_err(|r| spec_err(phase_index, "operations", r))? as u64,
        ),
        _ => None,
    };
    if ops.is_empty() {
        return Ok(PhaseResult {
            name: phase.name.clone(),
            measured: Duration::ZERO,
            concurrency: phase.concurrency,
            rate: phase.rate,
            stats: ClientStats::default(),
            skipped,
        });
    }
    let schedule = Schedule {
        warmup,
        duration,
        operations,
        rate: phase.rate,
        concurrency: phase.concurrency,
    };
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        issued: AtomicU64::new(0),
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    let ready = Arc::new(tokio::sync::Barrier::new(phase.concurrency + 1));
    let ctx = Arc::new(PhaseContext {
        target: target.clone(),
        ops,
        vars: vars.clone(),
        gens: gens.clone(),
        seed: workload.seed ^ ((phase_index as u64) << 32),
        schedule,
        shared: shared.clone(),
        ready: ready.clone(),
    });
    let mut handles = Vec::with_capacity(phase.concurrency);
    for i in 0..phase.concurrency {
        handles.push(tokio::spawn(worker(i, ctx.clone())));
    }
    // Wait for every client to connect and prepare (or fail).
    tokio::select! {
        _ = ready.wait() => {}
        _ = async {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if handles.iter().any(|h| h.is_finished()) {
                    break;
                }
            }
        } => {}
    }
    let started = Instant::now();
    let bar = progress(
        opts.quiet,
        duration.map_or(operations.unwrap_or(0), |d| (d + warmup).as_secs()),
        &phase.name,
    );
    let ticker = {
        let shared = shared.clone();
        let bar = bar.clone();
        let interrupted = interrupted.clone();
        let by_time = duration.is_some();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let elapsed = started.elapsed();
                let done = shared.done.load(Ordering::Relaxed);
                if by_time {
                    bar.set_position(elapsed.as_secs());
                } else {
                    bar.set_position(done);
                }
                let measured = elapsed.saturating_sub(warmup).as_secs_f64().max(0.001);
                bar.set_message(format!(
                    "{:.0} ops/s, {} errors",
                    done as f64 / measured,
                    shared.errors.load(Ordering::Relaxed)
                ));
                if interrupted.load(Ordering::Relaxed) {
                    shared.stop.store(true, Ordering::Relaxed);
                }
            }
        })
    };
    let mut stats = ClientStats::default();
    let mut first_error = None;
    for h in handles {
        match h.await {
            Ok(Ok(s)) => stats.merge(&s),
            Ok(Err(e)) => {
                shared.stop.store(true, Ordering::Relaxed);
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(HarnessError::Target {
                    target: target.info.kind.clone(),
                    reason: format!("client task failed: {e}"),
                });
            }
        }
    }
    ticker.abort();
    bar.finish_and_clear();
    if interrupted.load(Ordering::Relaxed) {
        return Err(HarnessError::Interrupted);
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let measured = started.elapsed().saturating_sub(warmup);
    Ok(PhaseResult {
        name: phase.name.clone(),
        measured,
        concurrency: phase.concurrency,
        rate: phase.rate,
        stats,
        skipped,
    })
}

fn spec_err(phase: usize, field: &str, reason: String) -> HarnessError {
    HarnessError::Spec {
        file: "workload".into(),
        field: format!("phases[{phase}].{field}"),
        reason,
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
    // Checks, with the run's counters as variables.
    let mut counters = BTreeMap::new();
    for p in &phases {
        let names: std::collections::BTreeSet<&String> =
            p.stats.ops.keys().chain(p.stats.warmup.keys()).collect();
        for op in names {
            let m = p.stats.ops.get(op);
            let w = p.stats.warmup.get(op).copied().unwrap_or_default();
            let ok = m.map_or(0, |s| s.ok) + w.ok;
            let rows = m.map_or(0, |s| s.rows) + w.rows;
            let errors = m.map_or(0, |s| s.error_count()) + w.errors;
            counters.insert(format!("ops.{}.{}.ok", p.name, op), ok.to_string());
            counters.insert(format!("ops.{}.{}.rows", p.name, op), rows.to_string());
            counters.insert(format!("ops.{}.{}.errors", p.name, op), errors.to_string());
        }
        for phase in &workload.phases {
            for op in &phase.ops {
                for k in ["ok", "rows", "errors"] {
                    counters
                        .entry(format!("ops.{}.{}.{k}", phase.name, op.name))
                        .or_insert_with(|| "0".into());
                }
            }
        }
    }
    let client = target.connect(0).await?;
    let mut checks = Vec::new();
    let mut skipped_checks = Vec::new();
    let flavor: Flavor = target.info.flavor;
    for check in &workload.checks {
        if !check.applies_to(flavor) {
            skipped_checks.push((
                check.name.clone(),
                format!("not applicable to {flavor:?} targets"),
            ));
            continue;
        }
        let sql = vars
            .substitute(&check.sql, &BTreeMap::new())
            .unwrap_or_else(|e| e);
        let expected = vars
            .substitute(&check.expect, &counters)
            .unwrap_or_else(|e| e);
        let (observed, passed) = match first_value(&client, &sql).await {
            Ok(Some(v)) => {
                let ok = values_equal(&expected, &v);
                (v, ok)
            }
            Ok(None) => ("NULL / no rows".into(), false),
            Err(e) => (describe_error(&e), false),
        };
        checks.push(CheckResult {
            name: check.name.clone(),
            sql,
            expected,
            observed,
            passed,
        });
    }
    Ok(RunResult {
        prepare_time,
        phases,
        checks,
        skipped_checks,
    })
}

#[cfg(test)]
mod tests {
    use super::values_equal;

    #[test]
    fn numeric_and_text_equality() {
        assert!(values_equal("100", "100"));
        assert!(values_equal("100", "100.0"));
        assert!(values_equal("1e3", "1000"));
        assert!(!values_equal("100", "101"));
        assert!(values_equal(" abc", "abc"));
        assert!(!values_equal("abc", "abd"));
    }
}
