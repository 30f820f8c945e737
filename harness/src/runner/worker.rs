//! The worker loop: one client running a phase's operations (closed loop,
//! or paced to the phase's rate) and counting what happened.

use super::*;

pub(super) struct Shared {
    pub(super) stop: AtomicBool,
    pub(super) issued: AtomicU64,
    pub(super) done: AtomicU64,
    pub(super) errors: AtomicU64,
}

/// What every client of a phase shares.
pub(super) struct PhaseContext {
    pub(super) target: Arc<Target>,
    pub(super) ops: Vec<Operation>,
    pub(super) vars: Vars,
    pub(super) gens: Arc<Generators>,
    pub(super) seed: u64,
    pub(super) schedule: Schedule,
    pub(super) shared: Arc<Shared>,
    pub(super) ready: Arc<tokio::sync::Barrier>,
}

pub(super) async fn worker(
    index: usize,
    ctx: Arc<PhaseContext>,
) -> Result<ClientStats, HarnessError> {
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
