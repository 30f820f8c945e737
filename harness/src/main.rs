//! The HoloFusion workload harness: runs YAML workloads against an embedded
//! cluster, a containerized cluster or any PostgreSQL-wire server, records
//! HDR latency histograms, enforces SLO gates and writes reports.
//!
//! Exit codes: 0 all checks and gates passed; 1 the harness could not do its
//! job (bad file, flag or target); 2 a check or gate failed; 130 interrupted.

mod compare;
mod conform;
mod error;
mod fuzz;
mod metrics;
mod params;
mod report;
mod runner;
mod slo;
mod spec;
mod target;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand, ValueEnum};

use crate::error::HarnessError;
use crate::report::{Attachments, Report};
use crate::runner::RunOptions;
use crate::slo::SloFile;
use crate::spec::{Flavor, Vars, Workload, parse_duration};
use crate::target::{Target, TargetOptions, TargetSpec};

/// HoloFusion workload harness.
#[derive(Debug, Parser)]
#[command(name = "harness", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FuzzKind {
    /// Protocol messages.
    Wire,
    /// SQL statements.
    Sql,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FlavorArg {
    Holofusion,
    Postgres,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a workload.
    Run {
        /// The workload file (YAML).
        workload: PathBuf,
        /// embedded (default), docker, postgres (a private PostgreSQL), or a postgres:// URL.
        #[arg(long, default_value = "embedded")]
        target: String,
        /// For URL targets: what the server is (decides which operations and checks apply).
        #[arg(long, value_enum, default_value = "postgres")]
        flavor: FlavorArg,
        /// Nodes of an embedded or docker cluster (1 = one `--single-node`
        /// process, a one-voter cluster; more = a replicated cluster).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// SLO gate file; the run exits 2 when a gate fails.
        #[arg(long)]
        slo: Option<PathBuf>,
        /// Override every phase's duration (e.g. 10s).
        #[arg(long)]
        duration: Option<String>,
        /// Multiply the workload's scaled variables (row counts).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Where report directories go.
        #[arg(long, default_value = "reports")]
        out: PathBuf,
        /// Compare with this earlier report (file or directory).
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Also run the workload on a private PostgreSQL and compare.
        #[arg(long)]
        vs_postgres: bool,
        /// The holo-fusion binary (default: next to the harness, built when missing).
        #[arg(long)]
        node_binary: Option<PathBuf>,
        /// Start HoloFusion nodes with --no-sync-writes.
        #[arg(long)]
        no_sync_writes: bool,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Fuzz a server: protocol messages (wire) or SQL statements (sql).
    /// Exits 2 on a crash, a hang past 10 s, a connection dropped without
    /// an ErrorResponse or a changed probe table.
    Fuzz {
        /// wire or sql.
        #[arg(value_enum)]
        kind: FuzzKind,
        /// embedded (default), docker, postgres, or a postgres:// URL.
        #[arg(long, default_value = "embedded")]
        target: String,
        /// Nodes of an embedded or docker cluster (more than one: a client
        /// on another node writes throughout and must see no failure).
        #[arg(long, default_value_t = 1)]
        nodes: usize,
        /// Total time, split over the seeds (e.g. 60s).
        #[arg(long, default_value = "60s")]
        duration: String,
        /// A seed (repeatable); default 1 when none is given.
        #[arg(long = "seed")]
        seeds: Vec<u64>,
        /// Also run one random seed (printed).
        #[arg(long)]
        random_seed: bool,
        /// SQL fuzzer: run every statement on a private PostgreSQL too and
        /// report where the classes of the answers differ.
        #[arg(long)]
        vs_postgres: bool,
        /// The holo-fusion binary (default: next to the harness).
        #[arg(long)]
        node_binary: Option<PathBuf>,
    },
    /// Run sqllogictest files against a fresh HoloFusion node per file
    /// (and, with --vs-postgres, a private PostgreSQL). Exits 2 when a
    /// record does not match.
    Conform {
        /// Directory of .slt files.
        #[arg(default_value = "engine/sql/tests/slt")]
        dir: PathBuf,
        /// Also run every file on a private PostgreSQL.
        #[arg(long)]
        vs_postgres: bool,
        /// The holo-fusion binary (default: next to the harness).
        #[arg(long)]
        node_binary: Option<PathBuf>,
    },
    /// Compare two reports.
    Compare {
        /// The earlier report (file or directory).
        a: PathBuf,
        /// The later report.
        b: PathBuf,
        /// Relative change counted as a regression.
        #[arg(long, default_value_t = 0.10)]
        threshold: f64,
    },
    /// List the workloads in a directory.
    List {
        /// Directory of workload files.
        #[arg(long, default_value = "workloads")]
        dir: PathBuf,
    },
    /// Validate workload files without running them.
    Validate {
        /// Workload files.
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HARNESS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(HarnessError::Interrupted) => {
            eprintln!("interrupted");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn dispatch(cli: Cli) -> Result<ExitCode, HarnessError> {
    match cli.command {
        Command::Run {
            workload,
            target,
            flavor,
            nodes,
            slo,
            duration,
            scale,
            out,
            baseline,
            vs_postgres,
            node_binary,
            no_sync_writes,
            quiet,
        } => {
            let args = RunArgs {
                workload,
                target: TargetSpec::parse(&target)?,
                flavor: match flavor {
                    FlavorArg::Holofusion => Flavor::Holofusion,
                    FlavorArg::Postgres => Flavor::Postgres,
                },
                slo,
                duration: duration
                    .map(|d| {
                        parse_duration(&d).map_err(|r| HarnessError::Flag {
                            flag: "duration".into(),
                            reason: r,
                        })
                    })
                    .transpose()?,
                scale,
                out,
                baseline,
                vs_postgres,
                options: TargetOptions {
                    nodes,
                    node_binary,
                    sync_writes: !no_sync_writes,
                },
                quiet,
            };
            run(args).await
        }
        Command::Fuzz {
            kind,
            target,
            nodes,
            duration,
            seeds,
            random_seed,
            vs_postgres,
            node_binary,
        } => {
            let duration = parse_duration(&duration).map_err(|r| HarnessError::Flag {
                flag: "duration".into(),
                reason: r,
            })?;
            let fixed = if seeds.is_empty() { vec![1] } else { seeds };
            let args = fuzz::FuzzArgs {
                sql: matches!(kind, FuzzKind::Sql),
                duration,
                seeds: fuzz::seeds(&fixed, random_seed),
                vs_postgres,
            };
            let target = Target::start(
                &TargetSpec::parse(&target)?,
                &TargetOptions {
                    nodes,
                    node_binary,
                    sync_writes: true,
                },
            )
            .await?;
            fuzz::run(&target, &args).await
        }
        Command::Conform {
            dir,
            vs_postgres,
            node_binary,
        } => {
            let args = conform::ConformArgs {
                dir,
                vs_postgres,
                target: TargetOptions {
                    nodes: 1,
                    node_binary,
                    sync_writes: true,
                },
            };
            Ok(if conform::run(&args).await? {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        Command::Compare { a, b, threshold } => {
            let ra = Report::read(&a)?;
            let rb = Report::read(&b)?;
            let deltas = compare::compare(&ra, &rb, threshold);
            print!(
                "{}",
                compare::render(&a.display().to_string(), &b.display().to_string(), &deltas)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::List { dir } => {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|e| HarnessError::Flag {
                    flag: "dir".into(),
                    reason: format!("{}: {e}", dir.display()),
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            entries.sort();
            for path in entries {
                match Workload::load(&path, 1.0) {
                    Ok((w, _)) => println!(
                        "{:<24} v{}  {}  ({})",
                        w.name,
                        w.version,
                        w.description,
                        path.display()
                    ),
                    Err(e) => println!("{:<24} INVALID: {e}", path.display()),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { files } => {
            let mut ok = true;
            for f in files {
                match Workload::load(&f, 1.0) {
                    Ok((w, _)) => println!("{}: ok ({})", f.display(), w.name),
                    Err(e) => {
                        ok = false;
                        println!("{e}");
                    }
                }
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

struct RunArgs {
    workload: PathBuf,
    target: TargetSpec,
    flavor: Flavor,
    slo: Option<PathBuf>,
    duration: Option<std::time::Duration>,
    scale: f64,
    out: PathBuf,
    baseline: Option<PathBuf>,
    vs_postgres: bool,
    options: TargetOptions,
    quiet: bool,
}

async fn run_once(
    spec: &TargetSpec,
    flavor: Option<Flavor>,
    (workload, vars): (&Workload, &Vars),
    args: &RunArgs,
    interrupted: &Arc<AtomicBool>,
) -> Result<Report, HarnessError> {
    let file = args.workload.display().to_string();
    eprintln!("starting target {}...", spec.kind());
    let mut target = Target::start(spec, &args.options).await?;
    if let Some(f) = flavor {
        target.set_flavor(f);
    }
    let target = Arc::new(target);
    eprintln!(
        "running {} on {} ({:?}, {})",
        workload.name,
        target.info.kind,
        target.info.flavor,
        target.info.endpoints.join(", ")
    );
    let started = chrono::Utc::now().to_rfc3339();
    let opts = RunOptions { quiet: args.quiet };
    let result = runner::run(target.clone(), workload, vars, &opts, interrupted.clone()).await?;
    let finished = chrono::Utc::now().to_rfc3339();
    Ok(Report::new(
        workload,
        &file,
        vars,
        args.scale,
        target.info.clone(),
        started,
        finished,
        &result,
    ))
}

async fn run(args: RunArgs) -> Result<ExitCode, HarnessError> {
    // Fail on bad files before starting anything; the workload is read and
    // resolved once for every target of the run.
    let (mut workload, vars) = Workload::load(&args.workload, args.scale)?;
    if let Some(d) = args.duration {
        workload.set_duration(d);
    }
    let (slo, slo_copy) = match &args.slo {
        Some(path) => {
            let (slo, text) = SloFile::load(path)?;
            let name = path
                .file_name()
                .map_or("slo.yaml".into(), |n| n.to_string_lossy().into_owned());
            (Some(slo), Some((name, text)))
        }
        None => (None, None),
    };
    let baseline = args.baseline.as_deref().map(Report::read).transpose()?;
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let interrupted = interrupted.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupted.store(true, Ordering::Relaxed);
            }
        });
    }
    let flavor = matches!(args.target, TargetSpec::Url(_)).then_some(args.flavor);
    let loaded = (&workload, &vars);
    let mut report = run_once(&args.target, flavor, loaded, &args, &interrupted).await?;
    let attachments = Attachments {
        workload_yaml: workload.to_yaml(),
        slo: slo_copy,
    };
    if args.vs_postgres {
        let mut pg = run_once(&TargetSpec::Postgres, None, loaded, &args, &interrupted).await?;
        pg.verdict = if pg.checks.iter().all(|c| c.passed) {
            "pass".into()
        } else {
            "fail".into()
        };
        let pg_attachments = Attachments {
            slo: None,
            ..attachments.clone()
        };
        let dir = pg.write(&args.out, "-postgres", &pg_attachments)?;
        eprintln!("baseline report: {}", dir.display());
        report.set_baseline(&pg, &dir.display().to_string());
    } else if let (Some(b), Some(path)) = (&baseline, &args.baseline) {
        report.set_baseline(b, &path.display().to_string());
    }
    if let Some(slo) = &slo {
        report.gates = slo.evaluate(&report);
    }
    report.verdict = if report.passed() {
        "pass".into()
    } else {
        "fail".into()
    };
    let dir = report.write(&args.out, "", &attachments)?;
    println!("{}", report.markdown());
    println!("report: {}", dir.display());
    print_failures(&report, &dir);
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn print_failures(report: &Report, dir: &Path) {
    for c in report.checks.iter().filter(|c| !c.passed) {
        eprintln!(
            "CHECK FAILED {}: expected {}, observed {}",
            c.name, c.expected, c.observed
        );
    }
    for g in report.gates.iter().filter(|g| !g.passed) {
        eprintln!(
            "GATE FAILED {}: threshold {}, observed {}",
            g.gate, g.threshold, g.observed
        );
    }
    if !report.passed() {
        eprintln!("verdict: fail (details in {})", dir.display());
    }
}
