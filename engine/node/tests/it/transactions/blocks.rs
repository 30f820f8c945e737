//! Transaction blocks on both protocols: multi-statement blocks, failed
//! blocks, implicit transactions of query strings, session defaults.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_statement_transactions_on_both_protocols() {
    let cluster = TestCluster::start(3, 20_000);
    let c1 = cluster.client(1).await;
    c1.batch_execute("CREATE TABLE mixed (id BIGINT PRIMARY KEY, v TEXT NOT NULL)")
        .await
        .unwrap();
    wait_replicated(&c1, "mixed").await;
    text_rows(&c1, "ALTER TABLE mixed SPLIT AT VALUES (100), (200)").await;
    wait_replicated(&c1, "mixed").await;
    let mut c = cluster.client(2).await;
    let other = cluster.client(3).await;
    for client in [&c, &other] {
        eventually(
            client,
            "SELECT 1 FROM mixed LIMIT 1",
            Duration::from_secs(10),
        )
        .await;
    }
    let all = "SELECT id, v FROM mixed ORDER BY id";

    // Simple protocol: INSERT, UPDATE and DELETE in one block, read back
    // inside it (each SELECT is its own query string).
    c.batch_execute(
        "BEGIN; INSERT INTO mixed VALUES (1, 'a'), (2, 'b'), (150, 'c'); \
         UPDATE mixed SET v = 'b2' WHERE id = 2; DELETE FROM mixed WHERE id = 1",
    )
    .await
    .unwrap();
    assert_eq!(id_v(&c, all).await, rows(&[(2, "b2"), (150, "c")]));
    assert_eq!(
        id_v(&other, all).await,
        rows(&[]),
        "another node sees uncommitted writes"
    );
    // A primary-key update moves the row to another range inside the block.
    c.batch_execute("UPDATE mixed SET id = 250 WHERE id = 150")
        .await
        .unwrap();
    assert_eq!(id_v(&c, all).await, rows(&[(2, "b2"), (250, "c")]));
    assert_eq!(
        id_v(&c, "SELECT id, v FROM mixed WHERE id = 150").await,
        rows(&[])
    );
    c.batch_execute("COMMIT").await.unwrap();
    let committed = rows(&[(2, "b2"), (250, "c")]);
    for client in [&c1, &other] {
        assert_eq!(id_v(client, all).await, committed);
    }

    // ROLLBACK discards a block's writes in every range.
    c.batch_execute(
        "BEGIN; INSERT INTO mixed VALUES (3, 'x'), (300, 'y'); \
         UPDATE mixed SET v = 'z' WHERE id = 250; DELETE FROM mixed WHERE id = 2",
    )
    .await
    .unwrap();
    assert_eq!(
        id_v(&c, all).await,
        rows(&[(3, "x"), (250, "z"), (300, "y")])
    );
    c.batch_execute("ROLLBACK").await.unwrap();
    for client in [&c, &c1, &other] {
        assert_eq!(id_v(client, all).await, committed);
    }

    // Every statement of a block reads the block's snapshot.
    c.batch_execute("BEGIN").await.unwrap();
    assert_eq!(id_v(&c, all).await, committed);
    other
        .batch_execute("INSERT INTO mixed VALUES (120, 'other')")
        .await
        .unwrap();
    assert_eq!(
        id_v(&c, all).await,
        committed,
        "a block saw a commit made after its snapshot"
    );
    assert_eq!(
        id_v(&c, "SELECT id, v FROM mixed WHERE id = 120").await,
        rows(&[])
    );
    c.batch_execute("COMMIT").await.unwrap();
    let committed = rows(&[(2, "b2"), (120, "other"), (250, "c")]);
    assert_eq!(id_v(&c, all).await, committed);

    // After an error in a block every statement but ROLLBACK/COMMIT fails
    // with 25P02, and COMMIT rolls back.
    c.batch_execute("BEGIN; INSERT INTO mixed VALUES (5, 'e')")
        .await
        .unwrap();
    expect_error(&c, "INSERT INTO mixed VALUES (2, 'dup')", "23505").await;
    expect_error(&c, "SELECT 1", "25P02").await;
    expect_error(&c, "INSERT INTO mixed VALUES (6, 'f')", "25P02").await;
    c.batch_execute("COMMIT").await.unwrap();
    assert_eq!(id_v(&other, all).await, committed);

    // SAVEPOINT and SELECT ... FOR UPDATE are refused with 0A000.
    c.batch_execute("BEGIN").await.unwrap();
    expect_error(&c, "SAVEPOINT s1", "0A000").await;
    expect_error(&c, "SELECT id FROM mixed WHERE id = 2 FOR UPDATE", "0A000").await;
    expect_error(&c, "SELECT 1", "25P02").await;
    c.batch_execute("ROLLBACK").await.unwrap();

    // Isolation levels up to REPEATABLE READ run as snapshot isolation;
    // SERIALIZABLE is refused.
    for level in ["READ UNCOMMITTED", "READ COMMITTED", "REPEATABLE READ"] {
        c.batch_execute(&format!("BEGIN ISOLATION LEVEL {level}"))
            .await
            .unwrap();
        c.batch_execute(&format!("SET TRANSACTION ISOLATION LEVEL {level}"))
            .await
            .unwrap();
        assert_eq!(
            text_rows(&c, "SHOW transaction_isolation").await,
            vec![vec![Some("repeatable read".to_string())]]
        );
        c.batch_execute("COMMIT").await.unwrap();
    }
    expect_error(&c, "BEGIN ISOLATION LEVEL SERIALIZABLE", "0A000").await;
    expect_error(
        &c,
        "SET default_transaction_isolation = 'serializable'",
        "0A000",
    )
    .await;
    let e = c
        .build_transaction()
        .isolation_level(IsolationLevel::Serializable)
        .start()
        .await
        .err()
        .expect("SERIALIZABLE must be refused");
    assert_eq!(e.code(), Some(&SqlState::FEATURE_NOT_SUPPORTED), "{e:?}");

    // Extended protocol: the same mix with parameters.
    {
        let tx = c.transaction().await.unwrap();
        let insert = tx
            .prepare("INSERT INTO mixed VALUES ($1, $2)")
            .await
            .unwrap();
        for (id, v) in [(10i64, "p"), (110, "q"), (210, "r")] {
            assert_eq!(tx.execute(&insert, &[&id, &v]).await.unwrap(), 1);
        }
        assert_eq!(
            tx.execute("UPDATE mixed SET v = $1 WHERE id = $2", &[&"q2", &110i64])
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            tx.execute("DELETE FROM mixed WHERE id = $1", &[&10i64])
                .await
                .unwrap(),
            1
        );
        let got: Vec<(i64, String)> = tx
            .query(
                "SELECT id, v FROM mixed WHERE id >= $1 ORDER BY id",
                &[&100i64],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1)))
            .collect();
        assert_eq!(
            got,
            rows(&[(110, "q2"), (120, "other"), (210, "r"), (250, "c")])
        );
        assert!(
            tx.query_opt("SELECT v FROM mixed WHERE id = $1", &[&10i64])
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            id_v(&other, "SELECT id, v FROM mixed WHERE id IN (10, 110, 210)").await,
            rows(&[])
        );
        tx.commit().await.unwrap();
    }
    let committed = rows(&[
        (2, "b2"),
        (110, "q2"),
        (120, "other"),
        (210, "r"),
        (250, "c"),
    ]);
    for client in [&c1, &other] {
        assert_eq!(id_v(client, all).await, committed);
    }
    {
        let tx = c.transaction().await.unwrap();
        assert_eq!(
            tx.execute("DELETE FROM mixed WHERE id >= $1", &[&200i64])
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            tx.execute("UPDATE mixed SET v = $1 WHERE id = $2", &[&"gone", &2i64])
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            tx.execute("INSERT INTO mixed VALUES ($1, $2)", &[&220i64, &"new"])
                .await
                .unwrap(),
            1
        );
        let n: i64 = tx
            .query_one("SELECT count(*) FROM mixed", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 4);
        tx.rollback().await.unwrap();
    }
    for client in [&c, &c1, &other] {
        assert_eq!(id_v(client, all).await, committed);
    }
    // 25P02 on the extended protocol too.
    {
        let tx = c.transaction().await.unwrap();
        let e = tx
            .execute("INSERT INTO mixed VALUES ($1, $2)", &[&2i64, &"dup"])
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(&SqlState::UNIQUE_VIOLATION), "{e:?}");
        let e = tx
            .query("SELECT count(*) FROM mixed", &[])
            .await
            .unwrap_err();
        assert_eq!(
            e.code(),
            Some(&SqlState::IN_FAILED_SQL_TRANSACTION),
            "{e:?}"
        );
        tx.rollback().await.unwrap();
    }
    // Autocommit on the extended protocol: visible at once on another node.
    assert_eq!(
        c.execute("INSERT INTO mixed VALUES ($1, $2)", &[&999i64, &"auto"])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        id_v(&other, "SELECT id, v FROM mixed WHERE id = 999").await,
        rows(&[(999, "auto")])
    );
}

/// A simple-protocol query string runs statement after statement: a SELECT
/// sees the statements before it and none after it, also inside a block
/// that the same string ends (PostgreSQL's behaviour).
#[tokio::test]
async fn simple_query_string_runs_its_statements_in_order() {
    let node = TestNode::start();
    let c = node.client().await;
    c.batch_execute("CREATE TABLE sq (id BIGINT PRIMARY KEY, v TEXT NOT NULL)")
        .await
        .unwrap();
    let got = text_rows(
        &c,
        "BEGIN; INSERT INTO sq VALUES (1, 'a'), (2, 'b'); SELECT id FROM sq ORDER BY id; \
         DELETE FROM sq WHERE id = 1; SELECT id FROM sq ORDER BY id; COMMIT",
    )
    .await;
    let one = |s: &str| vec![Some(s.to_string())];
    assert_eq!(got, vec![one("1"), one("2"), one("2")]);
    let got = text_rows(
        &c,
        "BEGIN; UPDATE sq SET v = 'z'; SELECT v FROM sq; ROLLBACK",
    )
    .await;
    assert_eq!(got, vec![one("z")]);
    assert_eq!(text_rows(&c, "SELECT v FROM sq").await, vec![one("b")]);
}

/// An error raised while a statement is prepared (extended protocol Parse)
/// fails the block like any other error: 25P02 until ROLLBACK, as on the
/// simple protocol.
#[tokio::test]
async fn parse_error_fails_the_block_on_both_protocols() {
    let node = TestNode::start();
    let mut c = node.client().await;
    c.batch_execute("CREATE TABLE pe (id BIGINT PRIMARY KEY)")
        .await
        .unwrap();
    c.batch_execute("BEGIN; INSERT INTO pe VALUES (1)")
        .await
        .unwrap();
    expect_error(&c, "SELECT nope FROM pe", "42703").await;
    expect_error(&c, "SELECT count(*) FROM pe", "25P02").await;
    c.batch_execute("ROLLBACK").await.unwrap();

    let tx = c.transaction().await.unwrap();
    tx.execute("INSERT INTO pe VALUES ($1)", &[&1i64])
        .await
        .unwrap();
    let e = tx.prepare("SELECT nope FROM pe").await.unwrap_err();
    assert_eq!(sqlstate(&e), "42703");
    let e = tx
        .query("SELECT count(*) FROM pe", &[])
        .await
        .expect_err("a statement after an error in the block must fail with 25P02");
    assert_eq!(
        e.code(),
        Some(&SqlState::IN_FAILED_SQL_TRANSACTION),
        "{e:?}"
    );
    tx.rollback().await.unwrap();
    assert_eq!(
        text_rows(&c, "SELECT count(*) FROM pe").await[0][0].as_deref(),
        Some("0")
    );
}

/// `default_transaction_read_only` makes new transactions, explicit and
/// implicit, read-only (25006 on writes); `SET TRANSACTION SNAPSHOT` is
/// refused rather than ignored.
#[tokio::test]
async fn session_defaults_and_unsupported_transaction_settings() {
    let node = TestNode::start();
    let c = node.client().await;
    c.batch_execute("CREATE TABLE ro (id BIGINT PRIMARY KEY)")
        .await
        .unwrap();
    c.batch_execute("SET default_transaction_read_only = on")
        .await
        .unwrap();
    expect_error(&c, "INSERT INTO ro VALUES (1)", "25006").await;
    c.batch_execute("BEGIN").await.unwrap();
    expect_error(&c, "INSERT INTO ro VALUES (1)", "25006").await;
    c.batch_execute("ROLLBACK").await.unwrap();
    // An explicit mode wins over the default.
    c.batch_execute("BEGIN READ WRITE; INSERT INTO ro VALUES (1); COMMIT")
        .await
        .unwrap();
    c.batch_execute("SET default_transaction_read_only = off")
        .await
        .unwrap();
    c.batch_execute("INSERT INTO ro VALUES (2)").await.unwrap();
    assert_eq!(
        text_rows(&c, "SELECT count(*) FROM ro").await[0][0].as_deref(),
        Some("2")
    );
    c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .await
        .unwrap();
    expect_error(
        &c,
        "SET TRANSACTION SNAPSHOT '00000003-0000001B-1'",
        "0A000",
    )
    .await;
    c.batch_execute("ROLLBACK").await.unwrap();
}

/// The statements of one simple-query string without transaction control
/// run as one transaction, as in PostgreSQL: an error undoes the ones
/// before it; strings with DDL still run statement by statement.
#[tokio::test]
async fn a_query_string_is_one_implicit_transaction() {
    let node = TestNode::start();
    let c = node.client().await;
    c.batch_execute(
        "CREATE TABLE im (id BIGINT PRIMARY KEY, v TEXT); INSERT INTO im VALUES (1, 'a')",
    )
    .await
    .unwrap();
    let e = c
        .batch_execute("INSERT INTO im VALUES (2, 'b'); UPDATE im SET v = 'z'; INSERT INTO im VALUES (1, 'dup')")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "23505", "{e:?}");
    assert_eq!(
        text_rows(&c, "SELECT id, v FROM im ORDER BY id").await,
        vec![vec![Some("1".to_string()), Some("a".to_string())]],
        "the statements before the failing one were undone"
    );
    // Reads inside the string see its earlier writes; the whole string
    // commits at its end.
    let rows = c
        .simple_query("INSERT INTO im VALUES (3, 'c'); SELECT count(*) FROM im")
        .await
        .unwrap();
    let counts: Vec<String> = rows
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect();
    assert_eq!(counts, vec!["2".to_string()]);
    assert_eq!(
        text_rows(&c, "SELECT count(*) FROM im").await[0][0].as_deref(),
        Some("2")
    );
}
