//! Foreign keys on a replicated cluster: a child row inserted through one
//! node and its parent deleted through another, at the same time, never
//! both commit, so no row is left referencing nothing.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn child_insert_and_parent_delete_on_different_nodes_never_both_commit() {
    let cluster = TestCluster::start(3, 300);
    let c1 = cluster.client(1).await;
    const KEYS: i64 = 30;
    c1.batch_execute(&format!(
        "CREATE TABLE parent (id BIGINT PRIMARY KEY, note TEXT);
         CREATE TABLE child (id BIGINT PRIMARY KEY, pid BIGINT REFERENCES parent);
         INSERT INTO parent SELECT i, 'p' FROM generate_series(1, {KEYS}) AS g(i);"
    ))
    .await
    .unwrap();
    wait_replicated(&c1, "child").await;
    let (c2, c3) = (cluster.client(2).await, cluster.client(3).await);
    for c in [&c2, &c3] {
        eventually(c, "SELECT 1 FROM child", Duration::from_secs(10)).await;
    }

    // Each key: a transaction on node 2 inserts a child of it, one on node
    // 3 deletes it; both statements run before either commits, then both
    // commit at once. Each sees the other's row as it was at its start.
    for p in 1..=KEYS {
        c2.batch_execute("BEGIN").await.unwrap();
        c3.batch_execute("BEGIN").await.unwrap();
        c2.batch_execute(&format!("INSERT INTO child VALUES ({p}, {p})"))
            .await
            .unwrap();
        c3.batch_execute(&format!("DELETE FROM parent WHERE id = {p}"))
            .await
            .unwrap();
        let (a, b) = tokio::join!(c2.batch_execute("COMMIT"), c3.batch_execute("COMMIT"));
        for r in [a, b] {
            if let Err(e) = r {
                assert_eq!(sqlstate(&e), "40001", "{e:?}");
            }
        }
    }

    // A parent whose child committed was not deleted; each key saw at most
    // one of the two commit, and the race went both ways over the keys.
    for node in [1u64, 2, 3] {
        let c = cluster.client(node).await;
        let rows = text_rows(
            &c,
            "SELECT count(*) FROM child WHERE pid NOT IN (SELECT id FROM parent)",
        )
        .await;
        assert_eq!(
            rows[0][0].as_deref(),
            Some("0"),
            "orphans seen on node {node}"
        );
    }
    let rows = text_rows(
        &c1,
        "SELECT (SELECT count(*) FROM child) AS c, (SELECT count(*) FROM parent) AS p",
    )
    .await;
    let children: i64 = rows[0][0].as_deref().unwrap().parse().unwrap();
    let parents: i64 = rows[0][1].as_deref().unwrap().parse().unwrap();
    let deleted = KEYS - parents;
    assert!(
        children + deleted <= KEYS,
        "{children} children, {deleted} deleted"
    );
    assert!(
        children > 0 && deleted > 0,
        "{children} children, {deleted} deleted"
    );

    // What is left holds: the parent of a child cannot go, and a child of
    // a deleted parent cannot come.
    let row = text_rows(&c1, "SELECT min(pid) FROM child").await;
    let live: i64 = row[0][0].as_deref().unwrap().parse().unwrap();
    let err = c3
        .batch_execute(&format!("DELETE FROM parent WHERE id = {live}"))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "23503", "{err:?}");
    let gone = text_rows(
        &c1,
        &format!("SELECT min(g.i) FROM generate_series(1, {KEYS}) AS g(i) WHERE g.i NOT IN (SELECT id FROM parent)"),
    )
    .await;
    let gone: i64 = gone[0][0].as_deref().unwrap().parse().unwrap();
    let err = c2
        .batch_execute(&format!("INSERT INTO child VALUES (1000, {gone})"))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "23503", "{err:?}");
}
