use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::{TestNode, expect_error, text_rows};

#[tokio::test]
async fn every_column_type_roundtrips_on_both_protocols() {
    let node = TestNode::start();
    let c = node.client().await;
    c.batch_execute(
        "CREATE TABLE all_types (
            id INTEGER PRIMARY KEY,
            b BOOLEAN, s SMALLINT, big BIGINT, r REAL, d DOUBLE PRECISION,
            n NUMERIC(12, 3), t TEXT, vc VARCHAR(8), by BYTEA, dt DATE,
            ts TIMESTAMP, tz TIMESTAMPTZ)",
    )
    .await
    .unwrap();
    c.batch_execute(
        "INSERT INTO all_types VALUES
           (1, true, -32768, 9223372036854775807, 1.5, -2.25, 123456789.125, 'héllo', 'abcdefgh',
            '\\xdeadbeef', '2024-02-29', '2024-01-02 03:04:05.678901', '2024-01-02 03:04:05+02'),
           (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    )
    .await
    .unwrap();
    // Simple protocol: text format.
    let rows = text_rows(&c, "SELECT * FROM all_types ORDER BY id").await;
    let expected: Vec<Option<String>> = [
        "1",
        "t",
        "-32768",
        "9223372036854775807",
        "1.5",
        "-2.25",
        "123456789.125",
        "héllo",
        "abcdefgh",
        "\\xdeadbeef",
        "2024-02-29",
        "2024-01-02 03:04:05.678901",
        "2024-01-02 01:04:05.000000+00",
    ]
    .iter()
    .map(|s| Some(s.to_string()))
    .collect();
    assert_eq!(rows[0], expected);
    assert!(rows[1][1..].iter().all(Option::is_none));
    // Extended protocol: binary format, typed.
    let row = c
        .query_one(
            "SELECT id, b, s, big, r, d, n::TEXT, t, vc, by, dt, ts, tz FROM all_types WHERE id = $1",
            &[&1i32],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
    assert!(row.get::<_, bool>(1));
    assert_eq!(row.get::<_, i16>(2), i16::MIN);
    assert_eq!(row.get::<_, i64>(3), i64::MAX);
    assert_eq!(row.get::<_, f32>(4), 1.5);
    assert_eq!(row.get::<_, f64>(5), -2.25);
    assert_eq!(row.get::<_, String>(6), "123456789.125");
    assert_eq!(row.get::<_, String>(7), "héllo");
    assert_eq!(row.get::<_, String>(8), "abcdefgh");
    assert_eq!(row.get::<_, Vec<u8>>(9), vec![0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(
        row.get::<_, NaiveDate>(10),
        NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()
    );
    assert_eq!(
        row.get::<_, NaiveDateTime>(11),
        NaiveDate::from_ymd_opt(2024, 1, 2)
            .unwrap()
            .and_hms_micro_opt(3, 4, 5, 678_901)
            .unwrap()
    );
    assert_eq!(
        row.get::<_, DateTime<Utc>>(12),
        "2024-01-02T01:04:05Z".parse::<DateTime<Utc>>().unwrap()
    );
    // Values that do not fit their type are rejected.
    expect_error(
        &c,
        "INSERT INTO all_types (id, vc) VALUES (3, 'ninechars')",
        "22001",
    )
    .await;
    expect_error(
        &c,
        "INSERT INTO all_types (id, s) VALUES (3, 40000)",
        "22003",
    )
    .await;
    expect_error(
        &c,
        "INSERT INTO all_types (id, n) VALUES (3, 12345678901.5)",
        "22003",
    )
    .await;
    expect_error(
        &c,
        "INSERT INTO all_types (id, dt) VALUES (3, 'not a date')",
        "22P02",
    )
    .await;
    assert_eq!(
        text_rows(&c, "SELECT count(*) FROM all_types").await[0][0].as_deref(),
        Some("2")
    );
}

#[tokio::test]
async fn if_not_exists_drop_if_exists_and_duplicates() {
    let node = TestNode::start();
    let c = node.client().await;
    c.batch_execute("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    expect_error(&c, "CREATE TABLE t (id INT PRIMARY KEY)", "42P07").await;
    c.batch_execute("CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY, x INT)")
        .await
        .unwrap();
    // The original definition stays.
    expect_error(&c, "SELECT x FROM t", "42703").await;
    c.batch_execute("INSERT INTO t VALUES (1)").await.unwrap();
    c.batch_execute("DROP TABLE t").await.unwrap();
    expect_error(&c, "DROP TABLE t", "42P01").await;
    c.batch_execute("DROP TABLE IF EXISTS t").await.unwrap();
    // A new table of the same name starts empty.
    c.batch_execute("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    assert_eq!(
        text_rows(&c, "SELECT count(*) FROM t").await[0][0].as_deref(),
        Some("0")
    );
    expect_error(&c, "CREATE TABLE d (a INT PRIMARY KEY, a INT)", "42701").await;
    expect_error(
        &c,
        "CREATE TABLE d (a INT PRIMARY KEY, b INT PRIMARY KEY)",
        "42P16",
    )
    .await;
    expect_error(&c, "CREATE TABLE d (a INT, PRIMARY KEY (zz))", "42703").await;
    expect_error(&c, "CREATE TABLE d (a INT)", "0A000").await;
    expect_error(
        &c,
        "CREATE TABLE d (a INT PRIMARY KEY, b INTERVAL)",
        "0A000",
    )
    .await;
}

#[tokio::test]
async fn composite_keys_defaults_and_checks() {
    let node = TestNode::start();
    let c = node.client().await;
    c.batch_execute(
        "CREATE TABLE orders (
            region TEXT, id BIGINT, qty INT NOT NULL DEFAULT 1 CHECK (qty > 0),
            note VARCHAR(20) DEFAULT 'none', created TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP,
            price NUMERIC(8,2) DEFAULT 9.99,
            PRIMARY KEY (region, id),
            CONSTRAINT price_positive CHECK (price >= 0))",
    )
    .await
    .unwrap();
    c.batch_execute(
        "INSERT INTO orders (region, id) VALUES ('eu', 2), ('eu', 1), ('us', 1);
         INSERT INTO orders (region, id, qty, note) VALUES ('ap', 7, 5, 'rush')",
    )
    .await
    .unwrap();
    let rows = text_rows(
        &c,
        "SELECT region, id, qty, note, price, created IS NOT NULL FROM orders",
    )
    .await;
    // Primary-key order: region, then id.
    let keys: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("ap".into(), "7".into()),
            ("eu".into(), "1".into()),
            ("eu".into(), "2".into()),
            ("us".into(), "1".into())
        ]
    );
    assert_eq!(
        rows[1][2..],
        [
            Some("1".into()),
            Some("none".into()),
            Some("9.99".into()),
            Some("t".into())
        ]
    );
    let e = expect_error(
        &c,
        "INSERT INTO orders (region, id, qty) VALUES ('eu', 9, 0)",
        "23514",
    )
    .await;
    assert!(crate::message(&e).contains("orders_qty_check"), "{e:?}");
    let e = expect_error(
        &c,
        "INSERT INTO orders (region, id, price) VALUES ('eu', 9, -1)",
        "23514",
    )
    .await;
    assert!(crate::message(&e).contains("price_positive"), "{e:?}");
    expect_error(
        &c,
        "INSERT INTO orders (region, id, qty) VALUES ('eu', 9, NULL)",
        "23502",
    )
    .await;
    expect_error(&c, "INSERT INTO orders (id) VALUES (9)", "23502").await;
    // A prefix of the key is a range scan, the whole key a point lookup.
    let plan = text_rows(&c, "EXPLAIN SELECT * FROM orders WHERE region = 'eu'").await;
    let text = format!("{plan:?}");
    assert!(
        text.contains("HoloScanExec") && text.contains("key range"),
        "{text}"
    );
    let plan = text_rows(
        &c,
        "EXPLAIN SELECT qty FROM orders WHERE region = 'eu' AND id = 2",
    )
    .await;
    assert!(format!("{plan:?}").contains("point lookup"), "{plan:?}");
    let rows = text_rows(&c, "SELECT id FROM orders WHERE region = 'eu' AND id >= 2").await;
    assert_eq!(rows, vec![vec![Some("2".to_string())]]);
    // Bad constraint definitions fail at CREATE time.
    expect_error(
        &c,
        "CREATE TABLE bad (a INT PRIMARY KEY CHECK (nope > 1))",
        "42703",
    )
    .await;
    expect_error(
        &c,
        "CREATE TABLE bad (a INT PRIMARY KEY DEFAULT 'abc')",
        "22P02",
    )
    .await;
    expect_error(
        &c,
        "CREATE TABLE bad (a INT PRIMARY KEY CHECK (a + 1))",
        "42804",
    )
    .await;
}
