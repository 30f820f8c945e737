use std::process::Command;

use crate::{TestNode, expect_error, text_rows};

#[tokio::test]
async fn prepared_statements_with_parameters() {
    let node = TestNode::start();
    let c = node.client().await;
    c.batch_execute("CREATE TABLE kv (k BIGINT PRIMARY KEY, v TEXT, n INT)")
        .await
        .unwrap();
    let insert = c
        .prepare("INSERT INTO kv (k, v, n) VALUES ($1, $2, $3)")
        .await
        .unwrap();
    for k in 0..50i64 {
        c.execute(&insert, &[&k, &format!("v{k}"), &(k as i32 * 2)])
            .await
            .unwrap();
    }
    let get = c.prepare("SELECT v, n FROM kv WHERE k = $1").await.unwrap();
    for k in [0i64, 17, 49] {
        let row = c.query_one(&get, &[&k]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), format!("v{k}"));
        assert_eq!(row.get::<_, i32>(1), k as i32 * 2);
    }
    assert!(c.query_opt(&get, &[&1000i64]).await.unwrap().is_none());
    let update = c
        .prepare("UPDATE kv SET n = n + $1 WHERE k >= $2 AND k < $3")
        .await
        .unwrap();
    assert_eq!(
        c.execute(&update, &[&1i32, &10i64, &20i64]).await.unwrap(),
        10
    );
    let range = c
        .prepare("SELECT count(*), sum(n) FROM kv WHERE k BETWEEN $1 AND $2")
        .await
        .unwrap();
    let row = c.query_one(&range, &[&10i64, &19i64]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 10);
    assert_eq!(
        row.get::<_, i64>(1),
        (10..20).map(|k| k * 2 + 1).sum::<i64>()
    );
    let delete = c.prepare("DELETE FROM kv WHERE v = $1").await.unwrap();
    assert_eq!(c.execute(&delete, &[&"v3"]).await.unwrap(), 1);
    // The same statement text over the simple protocol agrees.
    let rows = text_rows(&c, "SELECT count(*) FROM kv").await;
    assert_eq!(rows[0][0].as_deref(), Some("49"));
    // A parameter with a driver type wider than the column is conformed.
    let row = c
        .query_one("SELECT v FROM kv WHERE n = $1", &[&4i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "v2");
    // Errors in the extended protocol carry SQLSTATEs too.
    let err = c
        .execute(&insert, &[&1i64, &"dup", &0i32])
        .await
        .unwrap_err();
    assert_eq!(crate::sqlstate(&err), "23505");
    let err = c
        .prepare("SELECT nope FROM kv WHERE k = $1")
        .await
        .unwrap_err();
    assert_eq!(crate::sqlstate(&err), "42703");
}

#[tokio::test]
async fn transaction_blocks_on_both_protocols() {
    let node = TestNode::start();
    let c = node.client().await;
    c.batch_execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        .await
        .unwrap();
    // Simple protocol.
    c.batch_execute("BEGIN; INSERT INTO t VALUES (1, 1); INSERT INTO t VALUES (2, 2); COMMIT")
        .await
        .unwrap();
    c.batch_execute("BEGIN; INSERT INTO t VALUES (3, 3); ROLLBACK")
        .await
        .unwrap();
    assert_eq!(
        text_rows(&c, "SELECT count(*) FROM t").await[0][0].as_deref(),
        Some("2")
    );
    // Extended protocol through tokio-postgres' transaction API.
    let mut c = c;
    {
        let tx = c.transaction().await.unwrap();
        tx.execute("INSERT INTO t VALUES ($1, $2)", &[&10i32, &10i32])
            .await
            .unwrap();
        // Read-your-writes inside the transaction.
        let n: i64 = tx
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 3);
        tx.commit().await.unwrap();
    }
    {
        let tx = c.transaction().await.unwrap();
        tx.execute("UPDATE t SET v = 99", &[]).await.unwrap();
        tx.rollback().await.unwrap();
    }
    let v: i64 = c
        .query_one("SELECT sum(v) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, 13);
    // After an error inside a block, everything but ROLLBACK fails with 25P02.
    c.batch_execute("BEGIN").await.unwrap();
    expect_error(&c, "INSERT INTO t VALUES (1, 1)", "23505").await;
    expect_error(&c, "SELECT 1", "25P02").await;
    c.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(text_rows(&c, "SELECT 1").await[0][0].as_deref(), Some("1"));
}

#[tokio::test]
async fn psql_describes_tables() {
    let node = TestNode::start();
    let c = node.client().await;
    c.batch_execute(
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL, price NUMERIC(10,2))",
    )
    .await
    .unwrap();
    let (host, port) = node.addr.rsplit_once(':').unwrap();
    let psql = |cmd: &str| {
        let out = Command::new("psql")
            .args([
                "-h",
                host,
                "-p",
                port,
                "-U",
                "postgres",
                "-d",
                "holo",
                "-X",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                cmd,
            ])
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .expect("psql must be installed (apt-get install postgresql-client)");
        assert!(
            out.status.success(),
            "psql {cmd} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let dt = psql("\\dt");
    assert!(dt.contains("items") && dt.contains("table"), "{dt}");
    let d = psql("\\d items");
    assert!(
        d.contains("name") && d.contains("not null") && d.contains("price"),
        "{d}"
    );
    let q = psql("SELECT count(*) FROM items");
    assert!(q.contains('0'), "{q}");
}
