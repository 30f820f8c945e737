//! `holo-fusion`: the HoloFusion node process.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod run;

/// Stack of the async worker and blocking threads (address space; only the
/// pages a thread touches are backed by memory).
const WORKER_STACK_BYTES: usize = 32 << 20;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // Fault injection in test builds: `FAILPOINTS=name=action;...` (the
    // fail crate's syntax); release builds carry no failpoints.
    let _failpoints = holo_kv::failpoint::setup();
    // openraft reports routine protocol races (stale votes, replication
    // restarts) as warnings: quiet unless asked for by name.
    let spec = std::env::var("HOLO_LOG").unwrap_or_else(|_| "info".into());
    let spec = if spec.contains("openraft") {
        spec
    } else {
        format!("{spec},openraft=error")
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&spec)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    // Large stacks: statement trees (bounded by holo_sql::limits) are
    // cloned, dropped and evaluated recursively on the async workers too.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(WORKER_STACK_BYTES)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
