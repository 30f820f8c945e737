//! Multi-process cluster tests: three `holo-fusion` processes on loopback,
//! replication, routing from any node, splits, kill -9 failover, catch-up
//! and quorum loss. Every wait is bounded.

mod columns;
mod failover;
mod foreign_keys;
mod indexes;
mod placement;
mod sequences;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio_postgres::Client;

use crate::{connect, sqlstate, text_rows, wait_ready_line};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One node process of a [`TestCluster`].
struct ClusterProc {
    id: u64,
    rpc: String,
    pg: String,
    dir: PathBuf,
    child: Option<Child>,
}

/// Three nodes on loopback, node 1 bootstraps, the others join.
pub struct TestCluster {
    nodes: Vec<ClusterProc>,
    _tmp: TempDir,
    snapshot_every: u64,
    extra: Extra,
}

/// Extra flags and environment of a test cluster's node processes, kept
/// across restarts.
#[derive(Default, Clone)]
pub struct Extra {
    /// Flags for every node.
    pub args: Vec<String>,
    /// `(node id, name, value)` environment variables for single nodes.
    pub env: Vec<(u64, String, String)>,
}

impl TestCluster {
    /// Starts `n` nodes; `snapshot_every` applied entries trigger a range
    /// snapshot and log truncation.
    pub fn start(n: u64, snapshot_every: u64) -> TestCluster {
        TestCluster::start_with(n, snapshot_every, Extra::default())
    }

    /// Like [`TestCluster::start`], with extra flags and environment.
    pub fn start_with(n: u64, snapshot_every: u64, extra: Extra) -> TestCluster {
        let tmp = tempfile::tempdir().unwrap();
        let nodes = (1..=n)
            .map(|id| ClusterProc {
                id,
                rpc: format!("127.0.0.1:{}", free_port()),
                pg: format!("127.0.0.1:{}", free_port()),
                dir: tmp.path().join(format!("n{id}")),
                child: None,
            })
            .collect();
        let mut c = TestCluster {
            nodes,
            _tmp: tmp,
            snapshot_every,
            extra,
        };
        let pending: Vec<_> = (1..=n).map(|id| c.spawn(id)).collect();
        for (id, rx) in (1..=n).zip(pending) {
            wait_ready_line(rx, &format!("node {id}"));
        }
        c
    }

    fn spawn(&mut self, id: u64) -> std::sync::mpsc::Receiver<String> {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .filter(|p| p.id != id)
            .map(|p| p.rpc.clone())
            .collect();
        let snapshot_every = self.snapshot_every.to_string();
        let p = &mut self.nodes[(id - 1) as usize];
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_holo-fusion"));
        cmd.args([
            "start",
            "--node-id",
            &id.to_string(),
            "--listen",
            &p.rpc,
            "--pg-listen",
            &p.pg,
        ])
        .args(["--raft-snapshot-every", &snapshot_every, "--data-dir"])
        .arg(&p.dir)
        .args(["--join", &seeds.join(",")])
        .args(&self.extra.args)
        .env(
            "HOLO_LOG",
            std::env::var("TEST_HOLO_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        for (_, name, value) in self.extra.env.iter().filter(|(node, _, _)| *node == id) {
            cmd.env(name, value);
        }
        if id == 1 {
            cmd.arg("--bootstrap");
        }
        let mut child = cmd.spawn().expect("spawn holo-fusion");
        let stdout = child.stdout.take().expect("stdout");
        p.child = Some(child);
        crate::ready_lines(stdout)
    }

    /// A client of node `id`.
    pub async fn client(&self, id: u64) -> Client {
        connect(&self.nodes[(id - 1) as usize].pg).await
    }

    /// Runs `holoctl --host <node id's RPC address> args...` and returns its
    /// stdout.
    pub fn holoctl(&self, id: u64, args: &[&str]) -> String {
        let bin = std::path::Path::new(env!("CARGO_BIN_EXE_holo-fusion")).with_file_name("holoctl");
        if !bin.is_file() {
            // Another package's binary: cargo builds it only when asked.
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-p", "holoctl", "--bin", "holoctl"])
                .status()
                .expect("run cargo build -p holoctl");
            assert!(status.success(), "cargo build -p holoctl failed");
        }
        assert!(bin.is_file(), "holoctl not built at {}", bin.display());
        let out = Command::new(bin)
            .args(["--host", &self.nodes[(id - 1) as usize].rpc])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "holoctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// SIGKILLs node `id`.
    pub fn kill9(&mut self, id: u64) {
        if let Some(mut child) = self.nodes[(id - 1) as usize].child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Restarts node `id` on its data directory and waits until it serves.
    pub fn restart(&mut self, id: u64) {
        self.kill9(id);
        let rx = self.spawn(id);
        wait_ready_line(rx, &format!("node {id} (restart)"));
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for id in 1..=self.nodes.len() as u64 {
            self.kill9(id);
        }
    }
}

/// Retries `sql` until it succeeds or `limit` passes.
pub(crate) async fn eventually(client: &Client, sql: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        match client.batch_execute(sql).await {
            Ok(()) => return,
            Err(e) if Instant::now() < deadline => {
                eprintln!("retrying {sql:?}: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{sql:?} kept failing: {e:?}"),
        }
    }
}

/// `SHOW RANGES FROM TABLE t` rows: (range id, replicas, leaseholder).
pub(crate) async fn ranges(client: &Client, table: &str) -> Vec<(String, String, Option<String>)> {
    text_rows(client, &format!("SHOW RANGES FROM TABLE {table}"))
        .await
        .into_iter()
        .map(|r| (r[0].clone().unwrap(), r[3].clone().unwrap(), r[4].clone()))
        .collect()
}

/// Waits until every range of `table` has three replicas and a leaseholder.
pub(crate) async fn wait_replicated(client: &Client, table: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rs = ranges(client, table).await;
        if !rs.is_empty()
            && rs
                .iter()
                .all(|(_, replicas, lh)| replicas.split(',').count() == 3 && lh.is_some())
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "ranges of {table} not replicated: {rs:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub(crate) async fn count(client: &Client, table: &str) -> i64 {
    let rows = text_rows(
        client,
        &format!("SELECT count(*), count(DISTINCT id) FROM {table}"),
    )
    .await;
    let total: i64 = rows[0][0].as_deref().unwrap().parse().unwrap();
    let distinct: i64 = rows[0][1].as_deref().unwrap().parse().unwrap();
    assert_eq!(total, distinct, "duplicated rows in {table}");
    total
}

/// Runs `op` while three clients, one per node, each insert up to 400 rows
/// with ids from `base` on; returns the acknowledged ids. Retryable errors
/// (40001, 40003) are allowed, any other fails the test.
async fn inserts_during(
    cluster: &TestCluster,
    base: i64,
    op: impl std::future::Future<Output = ()>,
) -> Vec<i64> {
    let mut writers = Vec::new();
    for w in 0..3i64 {
        let client = cluster.client((w as u64 % 3) + 1).await;
        writers.push(tokio::spawn(async move {
            let insert = client
                .prepare("INSERT INTO kv VALUES ($1, $2)")
                .await
                .unwrap();
            let mut acked = Vec::new();
            for i in 0..400i64 {
                let id = base + w * 100_000 + i;
                match client.execute(&insert, &[&id, &"c"]).await {
                    Ok(_) => acked.push(id),
                    Err(e) => assert!(
                        ["40001", "40003"].contains(&sqlstate(&e).as_str()),
                        "unexpected error during range changes: {e:?}"
                    ),
                }
            }
            acked
        }));
    }
    op.await;
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    assert!(!acked.is_empty());
    acked
}
