use crate::{TestNode, expect_error, text_rows};

async fn count(c: &tokio_postgres::Client, table: &str) -> i64 {
    c.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn insert_select_update_delete() {
    let node = TestNode::start();
    let c = node.client().await;
    c.batch_execute(
        "CREATE TABLE acct (id BIGINT PRIMARY KEY, owner TEXT NOT NULL, balance BIGINT NOT NULL);
         CREATE TABLE audit (id BIGINT PRIMARY KEY, balance BIGINT)",
    )
    .await
    .unwrap();
    let n = c
        .execute(
            "INSERT INTO acct SELECT value, 'u' || CAST(value % 10 AS TEXT), value * 10 FROM generate_series(1, 500)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(n, 500);
    let n = c
        .execute(
            "INSERT INTO audit SELECT id, balance FROM acct WHERE balance > 4000",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(n, 100);
    let n = c
        .execute(
            "UPDATE acct SET balance = balance + 1 WHERE owner = 'u3' OR id BETWEEN 10 AND 12",
            &[],
        )
        .await
        .unwrap();
    let updated = |i: &i64| i % 10 == 3 || (10..=12).contains(i);
    assert_eq!(n, (1..=500i64).filter(updated).count() as u64);
    // Updated balances are odd: this deletes the updated rows below 100.
    let n = c
        .execute("DELETE FROM acct WHERE balance % 2 = 1 AND id < 100", &[])
        .await
        .unwrap();
    let deleted: Vec<i64> = (1..100i64).filter(updated).collect();
    assert_eq!(n, deleted.len() as u64);
    assert_eq!(count(&c, "acct").await, 500 - deleted.len() as i64);
    let sum: i64 = c
        .query_one("SELECT sum(balance) FROM acct", &[])
        .await
        .unwrap()
        .get(0);
    let expected: i64 = (1..=500i64)
        .filter(|i| !deleted.contains(i))
        .map(|i| i * 10 + i64::from(updated(&i)))
        .sum();
    assert_eq!(sum, expected);
    // Subqueries in predicates.
    let n = c
        .execute(
            "DELETE FROM audit WHERE id IN (SELECT id FROM acct WHERE owner = 'u0')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(n, 10);
    // A predicate that is always false deletes nothing.
    let n = c
        .execute("DELETE FROM acct WHERE 1 = 2", &[])
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(count(&c, "acct").await, 500 - deleted.len() as i64);
    // Joins, aggregates, ORDER BY, LIMIT.
    let rows = text_rows(
        &c,
        "SELECT a.owner, count(*) AS n, max(b.balance) FROM acct a JOIN audit b ON a.id = b.id
         GROUP BY a.owner ORDER BY n DESC, a.owner LIMIT 3",
    )
    .await;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0][1].as_deref(), Some("10"));
}

#[tokio::test]
async fn failing_statement_writes_nothing() {
    let node = TestNode::start();
    let c = node.client().await;
    c.batch_execute(
        "CREATE TABLE t (id INT PRIMARY KEY, v INT CHECK (v < 100));
         INSERT INTO t VALUES (1, 1), (2, 2), (3, 3)",
    )
    .await
    .unwrap();
    // Duplicate key in the middle of a multi-row insert.
    expect_error(
        &c,
        "INSERT INTO t VALUES (10, 1), (11, 1), (2, 9), (12, 1)",
        "23505",
    )
    .await;
    // Duplicate inside the statement itself.
    expect_error(&c, "INSERT INTO t VALUES (20, 1), (20, 2)", "23505").await;
    // A CHECK violation on some rows of an UPDATE.
    expect_error(&c, "UPDATE t SET v = v * 40", "23514").await;
    // A CHECK failure on some rows of an INSERT ... SELECT.
    expect_error(
        &c,
        "INSERT INTO t SELECT value, value AS v FROM generate_series(95, 105)",
        "23514",
    )
    .await;
    // A value that does not fit on one row of an INSERT ... SELECT.
    c.batch_execute("CREATE TABLE small (id INT PRIMARY KEY, s SMALLINT)")
        .await
        .unwrap();
    expect_error(
        &c,
        "INSERT INTO small SELECT value, value * 1000 FROM generate_series(1, 40)",
        "22003",
    )
    .await;
    assert_eq!(count(&c, "small").await, 0);
    let rows = text_rows(&c, "SELECT id, v FROM t ORDER BY id").await;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2], vec![Some("3".to_string()), Some("3".to_string())]);
}

#[tokio::test]
async fn updating_the_primary_key_moves_rows() {
    let node = TestNode::start();
    let c = node.client().await;
    c.batch_execute(
        "CREATE TABLE t (id INT PRIMARY KEY, v TEXT);
         INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')",
    )
    .await
    .unwrap();
    // Every key moves onto the next one's old key within one statement.
    assert_eq!(c.execute("UPDATE t SET id = id + 1", &[]).await.unwrap(), 3);
    let rows = text_rows(&c, "SELECT id, v FROM t").await;
    assert_eq!(
        rows,
        vec![
            vec![Some("2".to_string()), Some("a".to_string())],
            vec![Some("3".to_string()), Some("b".to_string())],
            vec![Some("4".to_string()), Some("c".to_string())],
        ]
    );
    expect_error(&c, "UPDATE t SET id = 4 WHERE id = 2", "23505").await;
    assert_eq!(
        text_rows(&c, "SELECT v FROM t WHERE id = 2").await[0][0].as_deref(),
        Some("a")
    );
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
