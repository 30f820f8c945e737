use crate::{TestNode, text_rows};

async fn count(c: &tokio_postgres::Client, table: &str) -> i64 {
    c.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn explain_shows_key_pushdown() {
    let node = TestNode::start();
    let c = node.client().await;
    c.batch_execute("CREATE TABLE kv (k BIGINT PRIMARY KEY, v TEXT)")
        .await
        .unwrap();
    let plan = |sql: &'static str| {
        let c = &c;
        async move { format!("{:?}", text_rows(c, sql).await) }
    };
    let p = plan("EXPLAIN SELECT v FROM kv WHERE k = 42").await;
    assert!(p.contains("point lookup [k = Int64(42)]"), "{p}");
    let p = plan("EXPLAIN SELECT v FROM kv WHERE k IN (1, 2, 3)").await;
    assert!(p.contains("3 point lookups"), "{p}");
    let p = plan("EXPLAIN SELECT v FROM kv WHERE k >= 10 AND k < 20").await;
    assert!(p.contains("1 key range(s)"), "{p}");
    let p = plan("EXPLAIN SELECT v FROM kv WHERE v = 'x'").await;
    assert!(p.contains("full scan") && p.contains("FilterExec"), "{p}");
    let p = plan("EXPLAIN DELETE FROM kv WHERE k = 7").await;
    assert!(
        p.contains("HoloWriteExec: op=Delete") && p.contains("point lookup"),
        "{p}"
    );
    // A prefix of a composite key is a range scan, the whole key a point
    // lookup.
    c.batch_execute(
        "CREATE TABLE orders (region TEXT, id BIGINT, qty INT, PRIMARY KEY (region, id))",
    )
    .await
    .unwrap();
    let p = plan("EXPLAIN SELECT * FROM orders WHERE region = 'eu'").await;
    assert!(p.contains("HoloScanExec") && p.contains("key range"), "{p}");
    let p = plan("EXPLAIN SELECT qty FROM orders WHERE region = 'eu' AND id = 2").await;
    assert!(p.contains("point lookup"), "{p}");
    // EXPLAIN of a write does not write.
    c.batch_execute("INSERT INTO kv VALUES (7, 'x')")
        .await
        .unwrap();
    let _ = plan("EXPLAIN DELETE FROM kv WHERE k = 7").await;
    assert_eq!(count(&c, "kv").await, 1);
}

#[tokio::test]
async fn scans_longer_than_one_batch_with_own_writes() {
    let node = TestNode::start();
    let mut c = node.client().await;
    c.batch_execute(
        "CREATE TABLE big (id BIGINT PRIMARY KEY, v BIGINT NOT NULL);
         INSERT INTO big SELECT value, value * 2 FROM generate_series(1, 30000) AS g(value)",
    )
    .await
    .unwrap();
    let row = c
        .query_one("SELECT count(*), sum(v) FROM big", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 30000);
    assert_eq!(
        row.get::<_, i64>(1),
        (1..=30000i64).map(|i| i * 2).sum::<i64>()
    );
    let rows = c
        .query("SELECT id FROM big WHERE id > 100 LIMIT 9000", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 9000);
    assert_eq!(rows[8999].get::<_, i64>(0), 9100);
    // Inside a transaction the scan merges the block's own writes across chunks.
    let tx = c.transaction().await.unwrap();
    tx.execute("DELETE FROM big WHERE id % 3 = 0", &[])
        .await
        .unwrap();
    tx.execute(
        "INSERT INTO big SELECT value, 0 FROM generate_series(30001, 30500) AS g(value)",
        &[],
    )
    .await
    .unwrap();
    let n: i64 = tx
        .query_one("SELECT count(*) FROM big", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 30000 - 10000 + 500);
    tx.rollback().await.unwrap();
    let n: i64 = c
        .query_one("SELECT count(*) FROM big", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 30000);
}

#[tokio::test]
async fn returning_on_the_extended_protocol() {
    let node = TestNode::start();
    let c = node.client().await;
    c.batch_execute(
        "CREATE TABLE notes (id BIGINT PRIMARY KEY, body TEXT NOT NULL, n INT DEFAULT 1)",
    )
    .await
    .unwrap();
    // Described result columns and typed parameters, as drivers prepare.
    let insert = c
        .prepare(
            "INSERT INTO notes (id, body) VALUES ($1, $2) RETURNING id, n, body || '!' AS loud",
        )
        .await
        .unwrap();
    let names: Vec<&str> = insert.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["id", "n", "loud"]);
    for id in 1..=3i64 {
        let row = c
            .query_one(&insert, &[&id, &format!("note {id}")])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), id);
        assert_eq!(row.get::<_, i32>(1), 1);
        assert_eq!(row.get::<_, String>(2), format!("note {id}!"));
    }
    // The command tag counts the rows (`UPDATE 2`): execute() reads it.
    let updated = c
        .execute(
            "UPDATE notes SET n = n + $1 WHERE id >= 2 RETURNING id",
            &[&5i32],
        )
        .await
        .unwrap();
    assert_eq!(updated, 2);
    let deleted = c
        .query("DELETE FROM notes WHERE id <> $1 RETURNING n, id", &[&2i64])
        .await
        .unwrap();
    let mut got: Vec<(i32, i64)> = deleted.iter().map(|r| (r.get(0), r.get(1))).collect();
    got.sort();
    assert_eq!(got, [(1, 1), (6, 3)]);
    assert_eq!(count(&c, "notes").await, 1);
    // Simple protocol: the tag is PostgreSQL's `INSERT 0 n`.
    let messages = c
        .simple_query("INSERT INTO notes VALUES (7, 'x', 0), (8, 'y', 0) RETURNING id")
        .await
        .unwrap();
    let tag = messages.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::CommandComplete(n) => Some(*n),
        _ => None,
    });
    assert_eq!(tag, Some(2));
}
