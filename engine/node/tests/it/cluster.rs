//! Multi-process cluster tests: three `holo-fusion` processes on loopback,
//! replication, routing from any node, splits, kill -9 failover, catch-up
//! and quorum loss. Every wait is bounded.

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
}

impl TestCluster {
    /// Starts `n` nodes; `snapshot_every` applied entries trigger a range
    /// snapshot and log truncation.
    pub fn start(n: u64, snapshot_every: u64) -> TestCluster {
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
        .env("HOLO_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
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
async fn eventually(client: &Client, sql: &str, limit: Duration) {
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
async fn ranges(client: &Client, table: &str) -> Vec<(String, String, Option<String>)> {
    text_rows(client, &format!("SHOW RANGES FROM TABLE {table}"))
        .await
        .into_iter()
        .map(|r| (r[0].clone().unwrap(), r[3].clone().unwrap(), r[4].clone()))
        .collect()
}

/// Waits until every range of `table` has three replicas and a leaseholder.
async fn wait_replicated(client: &Client, table: &str) {
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

async fn count(client: &Client, table: &str) -> i64 {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicated_cluster_routes_splits_and_survives_leaseholder_kill() {
    let mut cluster = TestCluster::start(3, 300);
    let c1 = cluster.client(1).await;
    c1.batch_execute("CREATE TABLE kv (id BIGINT PRIMARY KEY, v TEXT NOT NULL)")
        .await
        .unwrap();
    wait_replicated(&c1, "kv").await;

    // Writes through node 1 are read through nodes 2 and 3 (schema changes
    // reach other nodes' catalogs within a moment).
    c1.batch_execute("INSERT INTO kv SELECT value, 'v' || value FROM generate_series(1, 1000)")
        .await
        .unwrap();
    for id in [2, 3] {
        let c = cluster.client(id).await;
        eventually(&c, "SELECT 1 FROM kv LIMIT 1", Duration::from_secs(10)).await;
        assert_eq!(count(&c, "kv").await, 1000, "node {id}");
        let rows = text_rows(&c, "SELECT v FROM kv WHERE id = 777").await;
        assert_eq!(rows, vec![vec![Some("v777".to_string())]]);
    }

    // Splits on demand, then every row is still readable from every node.
    let split = text_rows(&c1, "ALTER TABLE kv SPLIT AT VALUES (250), (500), (750)").await;
    assert_eq!(split.len(), 3, "{split:?}");
    wait_replicated(&c1, "kv").await;
    let rs = ranges(&c1, "kv").await;
    assert!(
        rs.len() >= 4,
        "expected at least 4 ranges after the split: {rs:?}"
    );
    let ids: BTreeSet<_> = rs.iter().map(|r| r.0.clone()).collect();
    assert_eq!(ids.len(), rs.len(), "range ids repeat: {rs:?}");
    for id in [1, 2, 3] {
        let c = cluster.client(id).await;
        assert_eq!(count(&c, "kv").await, 1000, "node {id} after split");
    }

    // holoctl: topology, node status, lease transfer.
    let nodes = cluster.holoctl(2, &["nodes"]);
    assert_eq!(
        nodes
            .lines()
            .filter(|l| l.trim_end().ends_with(" up"))
            .count(),
        3,
        "{nodes}"
    );
    let topology = cluster.holoctl(3, &["ranges"]);
    assert!(topology.lines().count() >= 1 + 1 + 4, "{topology}");
    let (range, _, lh) = ranges(&c1, "kv").await.into_iter().next().unwrap();
    let to = if lh.as_deref() == Some("3") { "2" } else { "3" };
    cluster.holoctl(1, &["transfer-lease", &range, to]);
    let moved = ranges(&c1, "kv")
        .await
        .into_iter()
        .find(|r| r.0 == range)
        .unwrap();
    assert_eq!(
        moved.2.as_deref(),
        Some(to),
        "lease of range {range} did not move"
    );
    assert_eq!(count(&c1, "kv").await, 1000);

    // Splits under concurrent inserts: no lost and no duplicated rows.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..3i64 {
        let client = cluster.client((w as u64 % 3) + 1).await;
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let insert = client
                .prepare("INSERT INTO kv VALUES ($1, $2)")
                .await
                .unwrap();
            let mut acked = Vec::new();
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) && i < 400 {
                let id = 10_000 + w * 100_000 + i;
                match client.execute(&insert, &[&id, &"c"]).await {
                    Ok(_) => acked.push(id),
                    Err(e) => assert!(
                        ["40001", "40003"].contains(&sqlstate(&e).as_str()),
                        "unexpected error during splits: {e:?}"
                    ),
                }
                i += 1;
            }
            acked
        }));
    }
    for k in [10_050i64, 110_100, 210_150, 10_300] {
        text_rows(&c1, &format!("ALTER TABLE kv SPLIT AT VALUES ({k})")).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    assert!(!acked.is_empty());
    let c2 = cluster.client(2).await;
    let total = count(&c2, "kv").await;
    assert!(
        total >= 1000 + acked.len() as i64,
        "lost rows: {total} < {}",
        1000 + acked.len()
    );
    assert!(total <= 1000 + 1200, "more rows than attempted: {total}");

    // kill -9 of the leaseholder under a steady write load.
    wait_replicated(&c1, "kv").await;
    let leaseholder: u64 = ranges(&c1, "kv")
        .await
        .last()
        .unwrap()
        .2
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    let writer_node = if leaseholder == 1 { 2 } else { 1 };
    let client = cluster.client(writer_node).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let insert = client
                .prepare("INSERT INTO kv VALUES ($1, 'f')")
                .await
                .unwrap();
            let mut acked = Vec::new();
            let mut longest_gap = Duration::ZERO;
            let mut last_ok = Instant::now();
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let id = 1_000_000 + i;
                i += 1;
                if client.execute(&insert, &[&id]).await.is_ok() {
                    longest_gap = longest_gap.max(last_ok.elapsed());
                    last_ok = Instant::now();
                    acked.push(id);
                }
            }
            (acked, longest_gap)
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    cluster.kill9(leaseholder);
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop.store(true, Ordering::Relaxed);
    let (acked, gap) = load.await.unwrap();
    eprintln!(
        "failover: longest write gap {gap:?}, {} writes acknowledged",
        acked.len()
    );
    assert!(
        gap < Duration::from_secs(5),
        "writes paused for {gap:?} after the leaseholder died"
    );
    let survivor = cluster.client(writer_node).await;
    let list = acked
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let found = text_rows(
        &survivor,
        &format!("SELECT count(*) FROM kv WHERE id IN ({list})"),
    )
    .await;
    assert_eq!(
        found[0][0].as_deref(),
        Some(acked.len().to_string().as_str()),
        "acknowledged writes lost"
    );

    // Many writes while the node is down (the log is truncated past it),
    // then it restarts and catches up by snapshot. With a second node
    // killed, the restarted node is part of every quorum: all rows must be
    // there.
    survivor
        .batch_execute("INSERT INTO kv SELECT value + 2000000, 'd' FROM generate_series(1, 3000)")
        .await
        .unwrap();
    for i in 0..400i64 {
        survivor
            .execute("UPDATE kv SET v = 'u' WHERE id = $1", &[&(2_000_001 + i)])
            .await
            .unwrap();
    }
    let before = count(&survivor, "kv").await;
    cluster.restart(leaseholder);
    let other = [1, 2, 3]
        .into_iter()
        .find(|n| *n != leaseholder && *n != writer_node)
        .unwrap();
    // Let the restarted node receive its snapshots before the quorum depends
    // on it.
    let restarted = cluster.client(leaseholder).await;
    wait_replicated(&restarted, "kv").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.kill9(other);
    let c = cluster.client(leaseholder).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        match c.simple_query("SELECT count(*) FROM kv").await {
            Ok(msgs) => {
                let n = msgs.iter().find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        r.get(0).map(|v| v.parse::<i64>().unwrap())
                    }
                    _ => None,
                });
                break n.unwrap();
            }
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for the restarted node: {e}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => panic!("restarted node did not serve: {e:?}"),
        }
    };
    assert_eq!(after, before, "the restarted node lost rows");
    let u = text_rows(&c, "SELECT count(*) FROM kv WHERE v = 'u'").await;
    assert_eq!(u[0][0].as_deref(), Some("400"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quorum_loss_refuses_writes_then_recovers() {
    let mut cluster = TestCluster::start(3, 20_000);
    let c1 = cluster.client(1).await;
    c1.batch_execute("CREATE TABLE q (id BIGINT PRIMARY KEY)")
        .await
        .unwrap();
    wait_replicated(&c1, "q").await;
    c1.batch_execute("INSERT INTO q VALUES (1)").await.unwrap();
    cluster.kill9(2);
    cluster.kill9(3);
    let started = Instant::now();
    let err = c1
        .batch_execute("INSERT INTO q VALUES (2)")
        .await
        .unwrap_err();
    let code = sqlstate(&err);
    assert!(
        ["40001", "40003"].contains(&code.as_str()),
        "quorum loss must give a retryable SQLSTATE, got {code}: {err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "refusal took {:?}",
        started.elapsed()
    );
    eprintln!(
        "quorum loss: refused with {code} after {:?}",
        started.elapsed()
    );
    cluster.restart(2);
    eventually(&c1, "INSERT INTO q VALUES (3)", Duration::from_secs(30)).await;
    let rows = text_rows(&c1, "SELECT id FROM q WHERE id IN (1, 3) ORDER BY id").await;
    assert_eq!(rows, vec![vec![Some("1".into())], vec![Some("3".into())]]);
}
