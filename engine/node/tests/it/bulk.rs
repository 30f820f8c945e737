//! Large statements on a 3-node cluster: a bulk `INSERT ... SELECT` once
//! wedged a range (its writes reached Raft as one entry too large to
//! replicate within a heartbeat, and replication retried forever). Now each
//! commits or fails with a clear SQLSTATE, and other clients are served
//! throughout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::cluster::{TestCluster, count, eventually, wait_replicated};
use crate::sqlstate;

/// The result of a bystander client: writes acknowledged, reads, failures.
type Bystander = tokio::task::JoinHandle<(u64, u64, Vec<String>)>;

/// Starts a client on `node` that writes and reads one row after another
/// until `stop`.
async fn bystander(cluster: &TestCluster, node: u64, stop: Arc<AtomicBool>) -> Bystander {
    let c = cluster.client(node).await;
    tokio::spawn(async move {
        let (mut writes, mut reads, mut failures) = (0u64, 0u64, Vec::new());
        while !stop.load(Ordering::Relaxed) {
            let id = node as i64 * 1_000_000 + writes as i64;
            match c.execute("INSERT INTO side VALUES ($1, 'x')", &[&id]).await {
                Ok(_) => writes += 1,
                Err(e) => failures.push(format!("write: {e}")),
            }
            match c.query("SELECT count(*) FROM side", &[]).await {
                Ok(_) => reads += 1,
                Err(e) => failures.push(format!("read: {e}")),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (writes, reads, failures)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bulk_statements_commit_or_fail_clearly_while_others_are_served() {
    let cluster = TestCluster::start(3, 20_000);
    let c1 = cluster.client(1).await;
    eventually(
        &c1,
        "CREATE TABLE sf (id BIGINT PRIMARY KEY, a BIGINT, b BIGINT, c BIGINT, d BIGINT)",
        Duration::from_secs(30),
    )
    .await;
    c1.batch_execute("CREATE TABLE side (id BIGINT PRIMARY KEY, v TEXT)")
        .await
        .unwrap();
    wait_replicated(&c1, "sf").await;
    wait_replicated(&c1, "side").await;

    let stop = Arc::new(AtomicBool::new(false));
    let b2 = bystander(&cluster, 2, stop.clone()).await;
    let b3 = bystander(&cluster, 3, stop.clone()).await;

    // One million rows (about 50 MB) in one statement.
    let started = Instant::now();
    let n = c1
        .execute(
            "INSERT INTO sf SELECT value, value * 2, value * 3, value * 4, value * 5 \
             FROM generate_series(1, 1000000)",
            &[],
        )
        .await
        .expect("the 1M-row INSERT ... SELECT commits");
    eprintln!("1M-row INSERT ... SELECT: {:?}", started.elapsed());
    assert_eq!(n, 1_000_000);
    assert_eq!(count(&cluster.client(3).await, "sf").await, 1_000_000);

    // A 200 MB multi-row INSERT string: over the message limit, refused
    // unread.
    let mut big = String::with_capacity(200 << 20);
    big.push_str("INSERT INTO sf VALUES ");
    let mut i = 2_000_000u64;
    while big.len() < 200 << 20 {
        if i > 2_000_000 {
            big.push(',');
        }
        big.push_str(&format!("({i}, 1, 2, 3, 4)"));
        i += 1;
    }
    let started = Instant::now();
    let e = c1.batch_execute(&big).await.expect_err("refused");
    assert_eq!(sqlstate(&e), "54000", "{e}");
    eprintln!("200 MB INSERT string refused in {:?}", started.elapsed());
    drop(big);

    // A statement past the transaction limit fails whole, with 54000.
    let e = c1
        .batch_execute(
            "INSERT INTO side SELECT value, repeat('x', 10000) FROM generate_series(1, 60000)",
        )
        .await
        .expect_err("too large");
    assert_eq!(sqlstate(&e), "54000", "{e}");
    assert_eq!(count(&c1, "sf").await, 1_000_000);

    stop.store(true, Ordering::Relaxed);
    for b in [b2, b3] {
        let (writes, reads, failures) = b.await.unwrap();
        eprintln!(
            "bystander: {writes} writes, {reads} reads, {} failures",
            failures.len()
        );
        assert!(writes > 0 && reads > 0);
        assert!(
            failures.is_empty(),
            "other clients saw failures: {failures:?}"
        );
    }
}
