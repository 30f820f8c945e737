//! Sequences on a replicated cluster: every node hands out values from its
//! own block, concurrently, and no value is handed out twice; a killed
//! node's unused values are skipped, never reused.

use super::*;

/// `n` values of `seq` taken one statement at a time on `c`, half by
/// `nextval`, half by inserts into the SERIAL table `ev`.
async fn take(c: Client, node: u64, n: usize) -> Vec<i64> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let v: i64 = if i % 2 == 0 {
            c.query_one("SELECT nextval('ev_id_seq')", &[])
                .await
                .unwrap()
                .get(0)
        } else {
            let row = c
                .query_one(
                    "INSERT INTO ev (node) VALUES ($1) RETURNING id",
                    &[&(node as i32)],
                )
                .await
                .unwrap();
            i64::from(row.get::<_, i32>(0))
        };
        out.push(v);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_take_disjoint_blocks_of_one_sequence() {
    let mut cluster = TestCluster::start(3, 300);
    let c1 = cluster.client(1).await;
    c1.batch_execute("CREATE TABLE ev (id SERIAL PRIMARY KEY, node INT NOT NULL)")
        .await
        .unwrap();
    wait_replicated(&c1, "ev").await;
    let mut tasks = Vec::new();
    for node in 1..=3u64 {
        let c = cluster.client(node).await;
        eventually(&c, "SELECT 1 FROM ev", Duration::from_secs(10)).await;
        tasks.push(tokio::spawn(take(c, node, 150)));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let distinct: std::collections::HashSet<i64> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "a value was handed out twice");
    assert!(all.iter().all(|&v| v >= 1));

    // Node 3 dies holding part of a block: the values it held are skipped.
    let before: i64 = c1
        .query_one("SELECT max(id) FROM ev", &[])
        .await
        .unwrap()
        .get::<_, Option<i32>>(0)
        .map_or(0, i64::from);
    cluster.restart(3);
    let c3 = cluster.client(3).await;
    eventually(&c3, "SELECT 1 FROM ev", Duration::from_secs(10)).await;
    let after = take(c3, 3, 4).await;
    assert!(
        after.iter().all(|v| !distinct.contains(v) && *v > 0),
        "{after:?} reuses values handed out before the restart (max id {before})"
    );
}
