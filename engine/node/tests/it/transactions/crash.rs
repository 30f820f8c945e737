//! A coordinator killed in the middle of its two-phase commit: before the
//! primary commit nothing of the transaction is visible, after it
//! everything is (readers finish it through the primary).

use super::*;

/// The leaseholder of the meta range (the timestamp oracle), per
/// `holoctl ranges` (`range span-start span-end replicas leaseholder ...`).
fn meta_leaseholder(cluster: &TestCluster) -> Option<u64> {
    cluster.holoctl(1, &["ranges"]).lines().find_map(|l| {
        let t: Vec<&str> = l.split_whitespace().collect();
        if t.first() == Some(&"1") && t.len() >= 5 {
            t[4].parse().ok()
        } else {
            None
        }
    })
}

/// Moves the leases of `table`'s two ranges to the two nodes other than
/// `node`, one each (the lease balancer then has nothing to move), and the
/// meta range's lease off `node`.
async fn keep_leases_off(cluster: &TestCluster, c: &Client, table: &str, node: u64) {
    let rs = ranges(c, table).await;
    assert_eq!(rs.len(), 2, "expected two ranges of {table}: {rs:?}");
    let holder = |i: usize| rs[i].2.as_deref().and_then(|l| l.parse::<u64>().ok());
    let others: Vec<u64> = (1..=3).filter(|n| *n != node).collect();
    let other_than = |n: u64| others.iter().copied().find(|o| *o != n).unwrap();
    let first = match (holder(0), holder(1)) {
        (Some(a), _) if a != node => a,
        (_, Some(b)) if b != node => other_than(b),
        _ => others[0],
    };
    let second = other_than(first);
    for (i, to) in [(0, first), (1, second)] {
        if holder(i) != Some(to) {
            cluster.holoctl(1, &["transfer-lease", &rs[i].0, &to.to_string()]);
        }
    }
    if meta_leaseholder(cluster) == Some(node) {
        cluster.holoctl(1, &["transfer-lease", "1", &others[0].to_string()]);
    }
    let now = ranges(c, table).await;
    if now
        .iter()
        .any(|r| r.2.as_deref() == Some(node.to_string().as_str()))
    {
        eprintln!("a lease of {table} is on node {node} again: {now:?}");
    }
}

const CRASH_ROWS: &str = "SELECT id, v FROM crash ORDER BY id";

/// A cluster whose node 3 pauses every two-phase commit for 15 s at `hook`;
/// table `crash` in two ranges (split at 100) holding rows 50 and 150, with
/// the leases on nodes 1 and 2. Returns clients of nodes 1, 2 and 3.
async fn crash_setup(hook: &str) -> (TestCluster, Client, Client, Client) {
    let extra = Extra {
        args: Vec::new(),
        env: vec![(3, "FAILPOINTS".to_string(), format!("{hook}=return(15000)"))],
    };
    let cluster = TestCluster::start_with(3, 20_000, extra);
    let c1 = cluster.client(1).await;
    c1.batch_execute("CREATE TABLE crash (id BIGINT PRIMARY KEY, v TEXT NOT NULL)")
        .await
        .unwrap();
    wait_replicated(&c1, "crash").await;
    text_rows(&c1, "ALTER TABLE crash SPLIT AT VALUES (100)").await;
    wait_replicated(&c1, "crash").await;
    c1.batch_execute("INSERT INTO crash VALUES (50, 'base'), (150, 'base')")
        .await
        .unwrap();
    keep_leases_off(&cluster, &c1, "crash", 3).await;
    let c2 = cluster.client(2).await;
    let c3 = cluster.client(3).await;
    for c in [&c2, &c3] {
        eventually(c, "SELECT 1 FROM crash LIMIT 1", Duration::from_secs(10)).await;
    }
    // Node 3 has routed to both ranges before it coordinates.
    assert_eq!(
        id_v(&c3, CRASH_ROWS).await,
        rows(&[(50, "base"), (150, "base")])
    );
    (cluster, c1, c2, c3)
}

/// On node 3: a block writing two rows in each range, then COMMIT in the
/// background; returns the pending COMMIT once it is known to be paused.
async fn commit_paused_on_node_3(
    c3: Client,
    hook: &str,
) -> JoinHandle<Result<(), tokio_postgres::Error>> {
    c3.batch_execute(
        "BEGIN; INSERT INTO crash VALUES (10, 'txn'), (110, 'txn'); \
         UPDATE crash SET v = 'txn' WHERE id IN (50, 150)",
    )
    .await
    .unwrap();
    assert_eq!(
        id_v(&c3, CRASH_ROWS).await,
        rows(&[(10, "txn"), (50, "txn"), (110, "txn"), (150, "txn")])
    );
    let commit = tokio::spawn(async move { c3.batch_execute("COMMIT").await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !commit.is_finished(),
        "COMMIT on node 3 ended before the kill: does node 3 honour {hook}?"
    );
    commit
}

/// The COMMIT whose node was killed ends, without success.
async fn assert_commit_lost(commit: JoinHandle<Result<(), tokio_postgres::Error>>) {
    let result = timeout(Duration::from_secs(10), commit)
        .await
        .expect("COMMIT on the killed node did not end")
        .unwrap();
    assert!(
        result.is_err(),
        "COMMIT succeeded although its node was killed before finishing it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coordinator_killed_between_prewrite_and_commit_leaves_nothing() {
    let (mut cluster, c1, c2, c3) = crash_setup(PAUSE_AFTER_PREWRITE).await;
    let commit = commit_paused_on_node_3(c3, PAUSE_AFTER_PREWRITE).await;
    // Every key is prewritten (locked) and the primary is not committed.
    cluster.kill9(3);
    assert_commit_lost(commit).await;

    // Readers on the other nodes are not held up by the dead transaction's
    // locks and see none of its writes, by scan and by point read.
    let base = rows(&[(50, "base"), (150, "base")]);
    let started = Instant::now();
    for c in [&c1, &c2] {
        let got = timeout(WAIT, id_v_retrying(c, CRASH_ROWS, WAIT))
            .await
            .expect("a scan hung on the dead transaction's locks");
        assert_eq!(got, base);
        for id in [10i64, 50, 110, 150] {
            let got =
                id_v_retrying(c, &format!("SELECT id, v FROM crash WHERE id = {id}"), WAIT).await;
            let want: Vec<(i64, String)> = base.iter().filter(|r| r.0 == id).cloned().collect();
            assert_eq!(got, want, "id {id}");
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "reads took {:?} after the coordinator died",
        started.elapsed()
    );

    // Writers get the keys once the locks' TTL ran out: the inserts do not
    // meet the dead transaction's rows (it never committed).
    let started = Instant::now();
    assert_eq!(
        execute_retrying(
            &c1,
            "INSERT INTO crash VALUES (10, 'after'), (110, 'after')",
            WAIT
        )
        .await,
        2
    );
    assert_eq!(
        execute_retrying(
            &c1,
            "UPDATE crash SET v = 'after' WHERE id IN (50, 150)",
            WAIT
        )
        .await,
        2
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "writes to the dead transaction's keys waited {:?}",
        started.elapsed()
    );
    let after = rows(&[(10, "after"), (50, "after"), (110, "after"), (150, "after")]);
    for c in [&c1, &c2] {
        assert_eq!(id_v_retrying(c, CRASH_ROWS, WAIT).await, after);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coordinator_killed_after_the_primary_commit_leaves_everything() {
    let (mut cluster, c1, c2, c3) = crash_setup(PAUSE_AFTER_PRIMARY_COMMIT).await;
    let commit = commit_paused_on_node_3(c3, PAUSE_AFTER_PRIMARY_COMMIT).await;
    // The primary (id 10) is committed, the secondaries are still locked.
    cluster.kill9(3);
    assert_commit_lost(commit).await;

    // Readers finish the transaction through its committed primary: every
    // row of it, in both ranges, by scan and by point read.
    let txn = rows(&[(10, "txn"), (50, "txn"), (110, "txn"), (150, "txn")]);
    let started = Instant::now();
    for c in [&c1, &c2] {
        let got = timeout(WAIT, id_v_retrying(c, CRASH_ROWS, WAIT))
            .await
            .expect("a scan hung on the dead transaction's locks");
        assert_eq!(got, txn);
        for (id, v) in &txn {
            let got =
                id_v_retrying(c, &format!("SELECT id, v FROM crash WHERE id = {id}"), WAIT).await;
            assert_eq!(got, vec![(*id, v.clone())]);
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "reads took {:?} after the coordinator died",
        started.elapsed()
    );

    // No lock is left in the way of a writer.
    let started = Instant::now();
    assert_eq!(
        execute_retrying(
            &c2,
            "UPDATE crash SET v = 'after' WHERE id IN (10, 50, 110, 150)",
            WAIT
        )
        .await,
        4
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a write to the committed transaction's keys waited {:?}",
        started.elapsed()
    );
    let after = rows(&[(10, "after"), (50, "after"), (110, "after"), (150, "after")]);
    for c in [&c1, &c2] {
        assert_eq!(id_v_retrying(c, CRASH_ROWS, WAIT).await, after);
    }
}
