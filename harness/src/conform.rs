//! Conformance: sqllogictest files (`engine/sql/tests/slt/*.slt`) run by
//! one runner against a HoloFusion node and, with `--vs-postgres`, against
//! a private PostgreSQL, each file on a fresh database.
//!
//! A statement's error is `SQLSTATE: message`, so `statement error 42P01`
//! checks the code. Where the two servers answer differently on purpose,
//! the file says so: `onlyif holofusion` / `onlyif postgres` records with a
//! comment naming the reason (listed in `docs/sql-conformance.md`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use sqllogictest::{DBOutput, DefaultColumnType, Runner};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::error::HarnessError;
use crate::runner::describe_error;
use crate::target::{Target, TargetOptions, TargetSpec, connect_once};

/// A failed statement: `SQLSTATE: message` ([`describe_error`]).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SltError(String);

impl From<tokio_postgres::Error> for SltError {
    fn from(e: tokio_postgres::Error) -> SltError {
        SltError(describe_error(&e))
    }
}

/// One connection, as the runner sees it.
struct Conn {
    client: Client,
    engine: &'static str,
}

/// A value as sqllogictest files write it.
fn cell(v: Option<&str>) -> String {
    match v {
        None => "NULL".into(),
        Some("") => "(empty)".into(),
        Some(s) => s.to_string(),
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for Conn {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let messages = self.client.simple_query(sql).await?;
        let mut columns = None;
        let mut rows = Vec::new();
        let mut count = 0;
        for m in messages {
            match m {
                SimpleQueryMessage::RowDescription(desc) => columns = Some(desc.len()),
                SimpleQueryMessage::Row(row) => {
                    columns = Some(row.len());
                    rows.push((0..row.len()).map(|i| cell(row.get(i))).collect());
                }
                SimpleQueryMessage::CommandComplete(n) => count = n,
                _ => {}
            }
        }
        Ok(match columns {
            Some(n) => DBOutput::Rows {
                types: vec![DefaultColumnType::Any; n],
                rows,
            },
            None => DBOutput::StatementComplete(count),
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        self.engine
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await;
    }
}

async fn connect(config: tokio_postgres::Config, engine: &'static str) -> Result<Conn, SltError> {
    let client = connect_once(&config).await?;
    Ok(Conn { client, engine })
}

/// The `.slt` files under `dir`, in order.
pub fn files(dir: &Path) -> Result<Vec<PathBuf>, HarnessError> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| HarnessError::Flag {
            flag: "dir".into(),
            reason: format!("{}: {e}", dir.display()),
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    out.sort();
    if out.is_empty() {
        return Err(HarnessError::Flag {
            flag: "dir".into(),
            reason: format!("no .slt files in {}", dir.display()),
        });
    }
    Ok(out)
}

/// Runs `file` through connections made from `config`; the failure text
/// when a record does not match.
async fn run_file(
    file: &Path,
    config: tokio_postgres::Config,
    engine: &'static str,
) -> Result<(), String> {
    let mut runner = Runner::new(move || connect(config.clone(), engine));
    runner.add_label(engine);
    runner
        .run_file_async(file)
        .await
        .map_err(|e| e.display(false).to_string())
}

/// What `harness conform` runs.
#[derive(Debug, Clone)]
pub struct ConformArgs {
    /// The directory of `.slt` files.
    pub dir: PathBuf,
    /// Also run every file on a private PostgreSQL.
    pub vs_postgres: bool,
    /// How HoloFusion nodes are started.
    pub target: TargetOptions,
}

/// Runs every file on a fresh single HoloFusion node (and a fresh
/// PostgreSQL database); returns whether all passed.
pub async fn run(args: &ConformArgs) -> Result<bool, HarnessError> {
    let files = files(&args.dir)?;
    let postgres = if args.vs_postgres {
        let pg = Target::start(&TargetSpec::Postgres, &args.target).await?;
        let admin = pg.connect(0).await?;
        Some((pg, admin))
    } else {
        None
    };
    let mut failed = 0;
    for (i, file) in files.iter().enumerate() {
        let name = file.display();
        let node = Target::start(&TargetSpec::Embedded, &args.target).await?;
        match run_file(file, node.config(0), "holofusion").await {
            Ok(()) => println!("ok      holofusion  {name}"),
            Err(e) => {
                failed += 1;
                println!("FAILED  holofusion  {name}\n{e}");
            }
        }
        drop(node);
        if let Some((pg, admin)) = &postgres {
            let db = format!("slt_{i}");
            for sql in [
                format!("DROP DATABASE IF EXISTS {db}"),
                format!("CREATE DATABASE {db}"),
            ] {
                admin
                    .batch_execute(&sql)
                    .await
                    .map_err(|e| HarnessError::Target {
                        target: "postgres".into(),
                        reason: format!("{sql}: {}", SltError::from(e)),
                    })?;
            }
            let mut config = pg.config(0);
            config.dbname(&db);
            match run_file(file, config, "postgres").await {
                Ok(()) => println!("ok      postgres    {name}"),
                Err(e) => {
                    failed += 1;
                    println!("FAILED  postgres    {name}\n{e}");
                }
            }
        }
    }
    println!(
        "{} file(s), {failed} failure(s){}",
        files.len(),
        if args.vs_postgres {
            ", each on HoloFusion and PostgreSQL"
        } else {
            ", on HoloFusion"
        }
    );
    Ok(failed == 0)
}
