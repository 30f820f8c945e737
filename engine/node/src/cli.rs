//! Command line of `holo-fusion`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// HoloFusion: a distributed SQL database speaking the PostgreSQL protocol.
#[derive(Debug, Parser)]
#[command(name = "holo-fusion", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a node.
    Start(StartArgs),
}

/// Options of `holo-fusion start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Run as a single-node cluster (bootstraps the store on first start).
    #[arg(long)]
    pub single_node: bool,

    /// Directory of the node's store (created when missing).
    #[arg(long, env = "HOLO_DATA_DIR", value_name = "DIR")]
    pub data_dir: PathBuf,

    /// Address of the PostgreSQL endpoint.
    #[arg(
        long,
        env = "HOLO_PG_LISTEN",
        default_value = "127.0.0.1:5433",
        value_name = "ADDR"
    )]
    pub pg_listen: SocketAddr,

    /// Acknowledge writes before the write-ahead log is synced to disk.
    /// Faster, but a machine crash (not a process crash) can lose the last
    /// acknowledged writes. Off by default.
    #[arg(long, env = "HOLO_NO_SYNC_WRITES")]
    pub no_sync_writes: bool,

    /// Block cache size in MiB.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub block_cache_mib: usize,

    /// Most concurrent client connections (0 = unlimited).
    #[arg(long, default_value_t = 512)]
    pub max_connections: usize,

    /// How long old row versions stay readable before garbage collection
    /// (e.g. 10m, 1h).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub gc_ttl: std::time::Duration,

    /// Time between garbage-collection rounds.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub gc_interval: std::time::Duration,
}
