//! Point reads, point updates and short inserts take a fast path that skips
//! DataFusion's planner; these tests pin that it behaves exactly like the
//! general path.

use crate::{TestNode, expect_error, sqlstate, text_rows};

#[tokio::test]
async fn point_statements_match_general_semantics() {
    let node = TestNode::start();
    let mut c = node.client().await;
    c.batch_execute(
        "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(5) NOT NULL, n BIGINT CHECK (n >= 0),
                         b BYTEA, at TIMESTAMPTZ DEFAULT now())",
    )
    .await
    .unwrap();
    let insert = c
        .prepare("INSERT INTO t (id, name, n, b) VALUES ($1, $2, $3, '\\x0102')")
        .await
        .unwrap();
    for i in 1..=5i32 {
        assert_eq!(
            c.execute(&insert, &[&i, &format!("n{i}"), &(i as i64)])
                .await
                .unwrap(),
            1
        );
    }
    // Defaults, bytea text input and the inserted values are all there.
    let rows = text_rows(
        &c,
        "SELECT id, name, n, b, at IS NOT NULL FROM t WHERE id = 3",
    )
    .await;
    assert_eq!(
        rows[0],
        ["3", "n3", "3", "\\x0102", "t"]
            .iter()
            .map(|s| Some(s.to_string()))
            .collect::<Vec<_>>()
    );
    // Constraint errors are the same as on the general path.
    let e = c
        .execute(&insert, &[&1i32, &"dup", &0i64])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "23505");
    let e = c
        .execute(&insert, &[&9i32, &"toolong", &0i64])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "22001");
    let e = c
        .execute(&insert, &[&9i32, &"ok", &-1i64])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "23514");
    // Point reads: hit, miss, out-of-range parameter (no row, no error).
    let get = c
        .prepare("SELECT name, n FROM t WHERE id = $1")
        .await
        .unwrap();
    assert_eq!(
        c.query_one(&get, &[&2i32])
            .await
            .unwrap()
            .get::<_, String>(0),
        "n2"
    );
    assert!(c.query_opt(&get, &[&42i32]).await.unwrap().is_none());
    let wide = c
        .prepare("SELECT name FROM t WHERE id = $1::BIGINT")
        .await
        .unwrap();
    assert!(
        c.query_opt(&wide, &[&5_000_000_000i64])
            .await
            .unwrap()
            .is_none()
    );
    // Point updates, including an expression, a CHECK failure and a key change.
    let bump = c
        .prepare("UPDATE t SET n = n + $2 WHERE id = $1")
        .await
        .unwrap();
    assert_eq!(c.execute(&bump, &[&2i32, &10i64]).await.unwrap(), 1);
    assert_eq!(c.execute(&bump, &[&99i32, &10i64]).await.unwrap(), 0);
    let e = c.execute(&bump, &[&2i32, &-100i64]).await.unwrap_err();
    assert_eq!(sqlstate(&e), "23514");
    assert_eq!(
        c.query_one(&get, &[&2i32]).await.unwrap().get::<_, i64>(1),
        12
    );
    let move_key = c
        .prepare("UPDATE t SET id = $2 WHERE id = $1")
        .await
        .unwrap();
    assert_eq!(c.execute(&move_key, &[&5i32, &50i32]).await.unwrap(), 1);
    let e = c.execute(&move_key, &[&4i32, &50i32]).await.unwrap_err();
    assert_eq!(sqlstate(&e), "23505");
    assert!(c.query_opt(&get, &[&5i32]).await.unwrap().is_none());
    assert_eq!(
        c.query_one(&get, &[&50i32])
            .await
            .unwrap()
            .get::<_, String>(0),
        "n5"
    );
    // Inside a transaction block duplicates are reported at once, and the
    // block reads its own fast-path writes.
    {
        let tx = c.transaction().await.unwrap();
        tx.execute(&insert, &[&7i32, &"seven", &7i64])
            .await
            .unwrap();
        let n: i64 = tx.query_one(&get, &[&7i32]).await.unwrap().get(1);
        assert_eq!(n, 7);
        let e = tx
            .execute(&insert, &[&7i32, &"again", &7i64])
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&e), "23505");
        tx.rollback().await.unwrap();
    }
    assert!(c.query_opt(&get, &[&7i32]).await.unwrap().is_none());
    // A prepared statement survives DROP and CREATE of its table: it is
    // re-planned against the new definition.
    c.batch_execute("DROP TABLE t; CREATE TABLE t (id INT PRIMARY KEY, name TEXT, n BIGINT)")
        .await
        .unwrap();
    assert!(c.query_opt(&get, &[&2i32]).await.unwrap().is_none());
    c.batch_execute("INSERT INTO t VALUES (2, 'fresh', 1)")
        .await
        .unwrap();
    assert_eq!(
        c.query_one(&get, &[&2i32])
            .await
            .unwrap()
            .get::<_, String>(0),
        "fresh"
    );
    // Literal point statements over the simple protocol take the same path.
    c.batch_execute("UPDATE t SET n = 5 WHERE id = 2")
        .await
        .unwrap();
    assert_eq!(
        text_rows(&c, "SELECT n FROM t WHERE id = 2").await[0][0].as_deref(),
        Some("5")
    );
    expect_error(&c, "SELECT n FROM t WHERE id = 'x'", "22P02").await;
}

/// A point read by every column of a unique index goes through the index
/// (one entry, then the row) and answers as the general path does.
#[tokio::test]
async fn point_select_through_a_unique_index() {
    let node = TestNode::start();
    let c = node.client().await;
    c.batch_execute(
        "CREATE TABLE u (id BIGINT PRIMARY KEY, email TEXT UNIQUE, name TEXT);
         INSERT INTO u VALUES (1, 'a@x', 'ann'), (2, 'b@x', 'bob'), (3, NULL, 'nul');",
    )
    .await
    .unwrap();
    let by_email = c
        .prepare("SELECT id, name FROM u WHERE email = $1")
        .await
        .unwrap();
    let rows = c.query(&by_email, &[&"b@x"]).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i64>(0), 2);
    assert_eq!(rows[0].get::<_, String>(1), "bob");
    assert!(c.query(&by_email, &[&"zz"]).await.unwrap().is_empty());
    // `email = NULL` is never true, even for the row whose email is NULL.
    let none: Option<&str> = None;
    assert!(c.query(&by_email, &[&none]).await.unwrap().is_empty());
    // The index follows updates, deletes and key changes, also inside a
    // transaction block (its own writes).
    c.batch_execute("UPDATE u SET email = 'c@x' WHERE id = 2; UPDATE u SET id = 10 WHERE id = 1")
        .await
        .unwrap();
    assert!(c.query(&by_email, &[&"b@x"]).await.unwrap().is_empty());
    let rows = c.query(&by_email, &[&"a@x"]).await.unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 10);
    c.batch_execute("BEGIN; DELETE FROM u WHERE id = 10")
        .await
        .unwrap();
    assert!(c.query(&by_email, &[&"a@x"]).await.unwrap().is_empty());
    c.batch_execute("ROLLBACK").await.unwrap();
    // Literals take the same path; both agree with a full scan.
    let via_index = text_rows(&c, "SELECT id FROM u WHERE email = 'c@x'").await;
    let scanned = text_rows(&c, "SELECT id FROM u WHERE email || '' = 'c@x'").await;
    assert_eq!(via_index, scanned);
    assert_eq!(via_index, vec![vec![Some("2".to_string())]]);
}
