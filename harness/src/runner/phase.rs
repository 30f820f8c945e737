//! One phase: its schedule, warm-up and measured window, its clients
//! started and their statistics merged.

use super::*;

#[derive(Debug, Clone, Copy)]
pub(super) struct Schedule {
    pub(super) warmup: Duration,
    pub(super) duration: Option<Duration>,
    pub(super) operations: Option<u64>,
    pub(super) rate: Option<f64>,
    pub(super) concurrency: usize,
}

/// What every phase of a run shares.
pub(super) struct RunContext<'a> {
    pub(super) target: &'a Arc<Target>,
    pub(super) workload: &'a Workload,
    pub(super) vars: &'a Vars,
    pub(super) gens: &'a Arc<Generators>,
    pub(super) opts: &'a RunOptions,
    pub(super) interrupted: &'a Arc<AtomicBool>,
}

pub(super) async fn run_phase(
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
    let warmup = phase.warmup.unwrap_or(Duration::ZERO);
    let duration = phase.duration;
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

pub(super) fn spec_err(phase: usize, field: &str, reason: String) -> HarnessError {
    HarnessError::Spec {
        file: "workload".into(),
        field: format!("phases[{phase}].{field}"),
        reason,
    }
}
