//! Replica placement: replicas spread to new nodes and leave dead ones;
//! GC removes old versions but not those under open snapshots.

use super::*;

/// `holoctl nodes` rows: (node id, replicas held, up).
fn node_replicas(cluster: &TestCluster, via: u64) -> Vec<(u64, Option<usize>, bool)> {
    cluster
        .holoctl(via, &["nodes"])
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let id = w.first()?.parse().ok()?;
            let up = l.trim_end().ends_with(" up");
            Some((id, w.get(3).and_then(|c| c.parse().ok()), up))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_spread_to_new_nodes_and_leave_dead_ones() {
    let extra = Extra {
        args: vec!["--dead-node-secs".into(), "4".into()],
        env: Vec::new(),
    };
    let mut cluster = TestCluster::start_with(4, 20_000, extra);
    let c1 = cluster.client(1).await;
    c1.batch_execute("CREATE TABLE kv (id BIGINT PRIMARY KEY, v TEXT NOT NULL)")
        .await
        .unwrap();
    c1.batch_execute("INSERT INTO kv SELECT value, 'v' || value FROM generate_series(1, 2000)")
        .await
        .unwrap();
    text_rows(
        &c1,
        "ALTER TABLE kv SPLIT AT VALUES (400), (800), (1200), (1600)",
    )
    .await;

    // The fourth node joined after the first ranges were placed on three:
    // the rebalancer moves replicas onto it until no node holds two more
    // than another.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = node_replicas(&cluster, 1);
        let counts: Vec<usize> = rows.iter().filter_map(|r| r.1).collect();
        let (min, max) = (
            counts.iter().min().copied().unwrap_or(0),
            counts.iter().max().copied().unwrap_or(0),
        );
        if counts.len() == 4 && min >= 2 && max <= min + 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replicas did not spread over 4 nodes: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(count(&c1, "kv").await, 2000);

    // A node that stays down past --dead-node-secs loses its replicas to
    // the live nodes: every range has three replicas again, none on it.
    let victim = 2;
    cluster.kill9(victim);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let rs = ranges(&c1, "kv").await;
        let healed = rs.iter().all(|(_, replicas, lh)| {
            let r: Vec<&str> = replicas.split(',').collect();
            r.len() == 3 && !r.contains(&victim.to_string().as_str()) && lh.is_some()
        });
        if healed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replicas of dead node {victim} not replaced: {rs:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for id in [1, 3, 4] {
        let c = cluster.client(id).await;
        assert_eq!(count(&c, "kv").await, 2000, "node {id}");
    }
    // Writes keep working with the new replica sets.
    c1.batch_execute("INSERT INTO kv VALUES (5000, 'after')")
        .await
        .unwrap();
    let c4 = cluster.client(4).await;
    eventually(
        &c4,
        "SELECT 1 FROM kv WHERE id = 5000",
        Duration::from_secs(5),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gc_removes_old_versions_but_not_under_open_snapshots() {
    let extra = Extra {
        args: ["--gc-ttl", "1s", "--gc-interval", "1s"]
            .map(String::from)
            .to_vec(),
        env: Vec::new(),
    };
    let cluster = TestCluster::start_with(3, 20_000, extra);
    let c1 = cluster.client(1).await;
    c1.batch_execute("CREATE TABLE g (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)")
        .await
        .unwrap();
    c1.batch_execute("INSERT INTO g VALUES (1, 0)")
        .await
        .unwrap();
    wait_replicated(&c1, "g").await;

    // A transaction open on node 2 holds the safe point below its snapshot.
    let c2 = cluster.client(2).await;
    eventually(&c2, "SELECT 1 FROM g", Duration::from_secs(10)).await;
    c2.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .await
        .unwrap();
    let read = "SELECT v FROM g WHERE id = 1";
    assert_eq!(
        text_rows(&c2, read).await,
        vec![vec![Some("0".to_string())]]
    );
    let update = c1
        .prepare("UPDATE g SET v = $1 WHERE id = 1")
        .await
        .unwrap();
    for i in 1..=100i64 {
        c1.execute(&update, &[&i]).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        text_rows(&c2, read).await,
        vec![vec![Some("0".to_string())]],
        "GC removed a version an open transaction reads"
    );
    c2.batch_execute("COMMIT").await.unwrap();

    // Then the safe point passes the updates on every node and the old
    // versions go.
    let after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = cluster.holoctl(1, &["gc"]);
        let rows: Vec<(u64, u64)> = out
            .lines()
            .skip(1)
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                Some((w.get(1)?.parse().ok()?, w.get(2)?.parse().ok()?))
            })
            .collect();
        let removed: u64 = rows.iter().map(|r| r.1).sum();
        if rows.len() == 3 && rows.iter().all(|r| r.0 >= after) && removed >= 100 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "GC did not pass the updates: {out}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for id in [1, 2, 3] {
        let c = cluster.client(id).await;
        assert_eq!(
            text_rows(&c, read).await,
            vec![vec![Some("100".to_string())]],
            "node {id}"
        );
    }
}
