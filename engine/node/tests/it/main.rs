//! End-to-end tests: the real `holo-fusion` binary, spoken to over the
//! PostgreSQL wire protocol with tokio-postgres.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod bulk;
mod clients;
mod cluster;
mod ddl;
mod dml;
mod durability;
mod errors;
mod fastpath;
mod hostile;
mod planner;
mod protocol;
mod schema_change;
mod transactions;
mod wire;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio_postgres::{Client, NoTls};

/// A `holo-fusion` process on a loopback port, with its data directory.
pub struct TestNode {
    child: Option<Child>,
    pub addr: String,
    dir: PathBuf,
    _tmp: Option<TempDir>,
}

fn spawn(dir: &Path, extra: &[&str], envs: &[(&str, &str)]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_holo-fusion"))
        .args([
            "start",
            "--single-node",
            "--pg-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir)
        .args(extra)
        .env("HOLO_LOG", "warn")
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn holo-fusion");
    let stdout = child.stdout.take().expect("stdout");
    let addr = wait_ready_line(ready_lines(stdout), "node");
    (child, addr)
}

/// Forwards the PostgreSQL address of each readiness line of a node's
/// stdout.
pub fn ready_lines(stdout: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("holo-fusion ready pg=") {
                let addr = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let _ = tx.send(addr);
            }
        }
    });
    rx
}

/// Waits (at most 90 s) for a node's readiness line.
pub fn wait_ready_line(rx: std::sync::mpsc::Receiver<String>, what: &str) -> String {
    rx.recv_timeout(Duration::from_secs(90))
        .unwrap_or_else(|_| panic!("{what} did not become ready within 90s"))
}

/// A client of the PostgreSQL endpoint at `addr`, retrying connection
/// refusals for up to 30 s.
pub async fn connect(addr: &str) -> Client {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let conn_str = format!("host={host} port={port} user=postgres dbname=holo connect_timeout=10");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match tokio_postgres::connect(&conn_str, NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                return client;
            }
            Err(e) if Instant::now() < deadline => {
                eprintln!("connect retry: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot connect to {addr}: {e}"),
        }
    }
}

impl TestNode {
    /// Starts a node on a fresh data directory.
    pub fn start() -> TestNode {
        TestNode::start_with(&[], &[])
    }

    /// Starts a node on a fresh data directory with extra flags and
    /// environment variables.
    pub fn start_with(extra: &[&str], envs: &[(&str, &str)]) -> TestNode {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let (child, addr) = spawn(&dir, extra, envs);
        TestNode {
            child: Some(child),
            addr,
            dir,
            _tmp: Some(tmp),
        }
    }

    /// Kills the process with SIGKILL (no chance to flush anything).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Starts the process again on the same data directory.
    pub fn restart(&mut self) {
        self.kill9();
        let (child, addr) = spawn(&self.dir, &[], &[]);
        self.child = Some(child);
        self.addr = addr;
    }

    /// A connected client.
    pub async fn client(&self) -> Client {
        connect(&self.addr).await
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The SQLSTATE of a failed statement.
pub fn sqlstate(err: &tokio_postgres::Error) -> String {
    err.code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| format!("no SQLSTATE: {err}"))
}

/// Runs `sql` expecting failure with `code`.
pub async fn expect_error(client: &Client, sql: &str, code: &str) -> tokio_postgres::Error {
    match client.batch_execute(sql).await {
        Ok(()) => panic!("expected {code} from {sql:?}, but it succeeded"),
        Err(e) => {
            assert_eq!(sqlstate(&e), code, "wrong SQLSTATE for {sql:?}: {e:?}");
            e
        }
    }
}

/// The server's message of a failed statement.
pub fn message(err: &tokio_postgres::Error) -> String {
    err.as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_else(|| err.to_string())
}

/// Rows of a simple query as text.
pub async fn text_rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    let msgs = client.simple_query(sql).await.unwrap();
    msgs.into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}
