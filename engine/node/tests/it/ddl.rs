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
        "2024-01-02 01:04:05+00",
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
