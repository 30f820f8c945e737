//! `harness fuzz wire|sql`: fuzzers that attack a real server and fail on
//! what must never happen: a crash, an answer later than 10 s, a connection
//! dropped without an ErrorResponse, or a changed probe table.
//!
//! - [`wire`]: byte-level PostgreSQL protocol messages (startup, simple and
//!   extended protocol), valid, with lying lengths and counts, or broken.
//! - [`sql`]: random well- and ill-typed statements over a random schema
//!   ([`grammar`]), hostile shapes included, run against the target and
//!   (with `--vs-postgres`) a private PostgreSQL; the classes of the answers
//!   (result or error) are compared and reported.
//!
//! Every run takes fixed seeds plus, with `--random-seed`, one random seed
//! that is printed: a failing seed replays the same inputs.

pub mod grammar;
pub mod sql;
pub mod wire;

use std::time::{Duration, Instant};

use crate::error::HarnessError;
use crate::target::Target;

/// Longest a fuzzer waits for any answer before it reports a hang.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// A failure: what must never happen, with the input that caused it.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The seed of the run.
    pub seed: u64,
    /// Which case of the run (counting from 0).
    pub case: u64,
    /// What happened.
    pub what: String,
    /// The input, printable (truncated).
    pub input: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {} case {}: {}\n  input: {}",
            self.seed, self.case, self.what, self.input
        )
    }
}

/// Shortens `s` to `n` bytes for messages.
pub fn shorten(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &s[..end], s.len())
}

/// The `host:port` of node `i` of `target`.
pub fn address(target: &Target, i: usize) -> Result<String, HarnessError> {
    target.address(i).ok_or_else(|| HarnessError::Target {
        target: target.info.kind.clone(),
        reason: "the target has no TCP address".into(),
    })
}

/// The seeds of a run: the given ones, plus a fresh one when asked.
pub fn seeds(fixed: &[u64], random: bool) -> Vec<u64> {
    let mut out = fixed.to_vec();
    if random {
        let seed = rand::random::<u64>();
        eprintln!("random seed: {seed}");
        out.push(seed);
    }
    out
}

/// Splits `total` evenly over `n` seeds, each ending by its deadline.
pub fn deadlines(total: Duration, n: usize) -> impl Iterator<Item = Instant> {
    let each = total / (n.max(1) as u32);
    (0..n).map(move |_| Instant::now() + each)
}

/// What `harness fuzz` was asked to do.
#[derive(Debug, Clone)]
pub struct FuzzArgs {
    /// `wire` or `sql`.
    pub sql: bool,
    /// Total time, split over the seeds.
    pub duration: Duration,
    /// The seeds.
    pub seeds: Vec<u64>,
    /// Compare with a private PostgreSQL (SQL fuzzer).
    pub vs_postgres: bool,
}

/// A client writing one row after another to another node while the
/// fuzzer attacks node 0: every acknowledged row must be there afterwards,
/// and no write may fail.
struct Steady {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<(u64, Vec<String>)>,
}

impl Steady {
    async fn start(target: &Target) -> Result<Steady, HarnessError> {
        let client = target.connect(1).await?;
        client
            .batch_execute(
                "DROP TABLE IF EXISTS fuzz_steady; CREATE TABLE fuzz_steady (id BIGINT PRIMARY KEY)",
            )
            .await
            .map_err(|e| HarnessError::Sql {
                stage: "fuzz".into(),
                sql: "CREATE TABLE fuzz_steady".into(),
                reason: e.to_string(),
            })?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut acked = 0u64;
            let mut errors = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let sql = format!("INSERT INTO fuzz_steady VALUES ({acked})");
                match tokio::time::timeout(ANSWER_WITHIN, client.simple_query(&sql)).await {
                    Ok(Ok(_)) => acked += 1,
                    Ok(Err(e)) => errors.push(e.to_string()),
                    Err(_) => errors.push(format!("{sql}: no answer within 10s")),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (acked, errors)
        });
        Ok(Steady { stop, task })
    }

    async fn finish(self, target: &Target) -> Result<String, String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (acked, errors) = self.task.await.map_err(|e| e.to_string())?;
        let reader = target.connect(2).await.map_err(|e| e.to_string())?;
        let rows = reader
            .simple_query("SELECT count(*) FROM fuzz_steady")
            .await
            .map_err(|e| format!("reading the steady writer's rows: {e}"))?;
        let count = rows
            .into_iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    r.get(0).and_then(|v| v.parse::<u64>().ok())
                }
                _ => None,
            })
            .unwrap_or(0);
        if !errors.is_empty() {
            return Err(format!(
                "the steady writer on another node failed {} times, first: {}",
                errors.len(),
                errors[0]
            ));
        }
        if count != acked {
            return Err(format!(
                "the steady writer's table has {count} rows, {acked} were acknowledged"
            ));
        }
        Ok(format!(
            "steady writer on node 2: {acked} rows acknowledged, all present, no errors"
        ))
    }
}

/// Runs the fuzzer on `target`; exit code 2 on a failure.
pub async fn run(target: &Target, args: &FuzzArgs) -> Result<std::process::ExitCode, HarnessError> {
    let addr = address(target, 0)?;
    let steady = if target.info.nodes > 1 {
        Some(Steady::start(target).await?)
    } else {
        None
    };
    let postgres = if args.vs_postgres && args.sql {
        let pg = Target::start(
            &crate::target::TargetSpec::Postgres,
            &crate::target::TargetOptions {
                nodes: 1,
                node_binary: None,
                sync_writes: true,
            },
        )
        .await?;
        let client = pg.connect(0).await?;
        let _ = client.batch_execute("SET statement_timeout = '10s'").await;
        Some((pg, client))
    } else {
        None
    };
    let mut failures = Vec::new();
    for (seed, deadline) in args
        .seeds
        .iter()
        .zip(deadlines(args.duration, args.seeds.len()))
    {
        let started = Instant::now();
        if args.sql {
            let connect = || -> futures::future::BoxFuture<'static, Result<tokio_postgres::Client, String>> {
                let config = target.config(0);
                Box::pin(async move {
                    let (client, conn) = config
                        .connect(tokio_postgres::NoTls)
                        .await
                        .map_err(|e| format!("cannot connect: {e} (the node is down?)"))?;
                    tokio::spawn(conn);
                    Ok(client)
                })
            };
            let sides = sql::Sides {
                connect: &connect,
                postgres: postgres.as_ref().map(|(_, c)| c),
            };
            match sql::run(&sides, *seed, deadline).await {
                Ok(s) => {
                    println!(
                        "sql seed {seed}: {} statements, {} connections in {:.0?}; classes {:?}; {} differ from PostgreSQL",
                        s.statements,
                        s.connections,
                        started.elapsed(),
                        s.classes,
                        s.mismatches
                    );
                    for (stmt, ours, theirs) in &s.examples {
                        println!("  differs: {ours} here, {theirs} in PostgreSQL: {stmt}");
                    }
                }
                Err(f) => failures.push(f),
            }
        } else {
            let client = target.connect(0).await?;
            let expected =
                sql::create_probe(&client)
                    .await
                    .map_err(|reason| HarnessError::Target {
                        target: target.info.kind.clone(),
                        reason,
                    })?;
            let outcome = wire::run(&addr, *seed, deadline).await;
            let fresh = target.connect(0).await?;
            if let Err(what) = sql::check_probe(&fresh, &expected).await {
                failures.push(Failure {
                    seed: *seed,
                    case: 0,
                    what,
                    input: String::new(),
                });
            }
            match outcome {
                Ok(s) => println!(
                    "wire seed {seed}: {} connections, {} messages in {:.0?}; {} errors, {} closed after FATAL, {} probes answered",
                    s.connections,
                    s.messages,
                    started.elapsed(),
                    s.errors,
                    s.fatal,
                    s.probes
                ),
                Err(f) => failures.push(f),
            }
        }
    }
    if let Some(steady) = steady {
        match steady.finish(target).await {
            Ok(line) => println!("{line}"),
            Err(what) => failures.push(Failure {
                seed: 0,
                case: 0,
                what,
                input: String::new(),
            }),
        }
    }
    for f in &failures {
        eprintln!("FUZZ FAILURE {f}");
    }
    Ok(if failures.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(2)
    })
}
