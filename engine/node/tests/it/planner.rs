//! The planner's choice of access path from statistics: after ANALYZE,
//! EXPLAIN shows the index for a selective predicate and the full scan for
//! an unselective one, with the estimated rows; EXPLAIN ANALYZE shows the
//! actual ones; enough new rows refresh the statistics by themselves.

use std::time::{Duration, Instant};

use crate::{TestNode, text_rows};

async fn plan(c: &tokio_postgres::Client, sql: &str) -> String {
    format!("{:?}", text_rows(c, &format!("EXPLAIN {sql}")).await)
}

/// The scan's estimated rows in plan text `p`.
fn est(p: &str) -> Option<u64> {
    let rest = &p[p.find("est_rows=")? + "est_rows=".len()..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

#[tokio::test]
async fn statistics_choose_between_an_index_and_a_full_scan() {
    let node = TestNode::start();
    let c = node.client().await;
    // kind: 'common' in 95% of the rows, 1000 rare values once each;
    // n: a hundred values, a hundredth of the rows each.
    c.batch_execute(
        "CREATE TABLE ev (id BIGINT PRIMARY KEY, kind TEXT, n INT);
         CREATE INDEX ev_kind ON ev (kind);
         CREATE INDEX ev_n ON ev (n);
         INSERT INTO ev SELECT i, CASE WHEN i % 20 = 0 THEN 'rare_' || i ELSE 'common' END, i % 100
           FROM generate_series(1, 20000) AS g(i);
         ANALYZE ev;",
    )
    .await
    .unwrap();

    let p = plan(&c, "SELECT * FROM ev WHERE kind = 'rare_40'").await;
    assert!(p.contains("index=ev_kind") && est(&p) == Some(1), "{p}");
    let p = plan(&c, "SELECT * FROM ev WHERE kind = 'common'").await;
    assert!(!p.contains("index=") && est(&p) == Some(19000), "{p}");
    let p = plan(&c, "SELECT * FROM ev WHERE n = 3").await;
    assert!(p.contains("index=ev_n") && est(&p) == Some(200), "{p}");
    // A tenth of the table: 2 000 point reads cost more than the scan.
    let p = plan(&c, "SELECT * FROM ev WHERE n < 50").await;
    assert!(!p.contains("index="), "{p}");
    let p = plan(
        &c,
        "SELECT * FROM ev WHERE n IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)",
    )
    .await;
    assert!(!p.contains("index=") && est(&p) == Some(2000), "{p}");
    let p = plan(
        &c,
        "SELECT * FROM ev WHERE kind IN ('rare_40', 'rare_60', 'x')",
    )
    .await;
    assert!(p.contains("index=ev_kind") && est(&p) == Some(3), "{p}");
    // What the index holds is read from it alone.
    let p = plan(&c, "SELECT id FROM ev WHERE n = 3").await;
    assert!(p.contains("index=ev_n (index only)"), "{p}");
    let rows = text_rows(&c, "SELECT sum(id) FROM ev WHERE n = 3").await;
    let want: i64 = (1..=20000).filter(|i| i % 100 == 3).sum();
    assert_eq!(rows[0][0].as_deref(), Some(want.to_string().as_str()));
    // A primary-key predicate beats an unselective index, and a selective
    // index beats a wide key range.
    let p = plan(&c, "SELECT * FROM ev WHERE id = 7 AND n = 7").await;
    assert!(!p.contains("index=") && p.contains("point lookup"), "{p}");
    let p = plan(&c, "SELECT * FROM ev WHERE id > 100 AND kind = 'rare_40'").await;
    assert!(p.contains("index=ev_kind"), "{p}");
    // ... and the key predicate still holds on what the index finds.
    let rows = text_rows(
        &c,
        "SELECT count(*) FROM ev WHERE id > 100 AND kind = 'rare_40'",
    )
    .await;
    assert_eq!(rows[0][0].as_deref(), Some("0"));
    let rows = text_rows(
        &c,
        "SELECT count(*) FROM ev WHERE id > 30 AND kind = 'rare_40'",
    )
    .await;
    assert_eq!(rows[0][0].as_deref(), Some("1"));

    // Both paths give the same rows.
    for (sql, want) in [
        ("SELECT count(*) FROM ev WHERE kind = 'rare_40'", "1"),
        ("SELECT count(*) FROM ev WHERE kind = 'common'", "19000"),
        ("SELECT count(*) FROM ev WHERE n = 3", "200"),
        ("SELECT count(*) FROM ev WHERE n < 50", "10000"),
    ] {
        assert_eq!(
            text_rows(&c, sql).await[0][0].as_deref(),
            Some(want),
            "{sql}"
        );
    }

    // EXPLAIN ANALYZE: estimated and actual rows of the scan.
    let p = format!(
        "{:?}",
        text_rows(&c, "EXPLAIN ANALYZE SELECT * FROM ev WHERE n = 3").await
    );
    assert!(
        est(&p) == Some(200) && p.contains("output_rows=200,"),
        "{p}"
    );

    // A join whose other side has few keys reads only those rows: the hash
    // join's filter on the keys becomes point reads of the primary key, or
    // lookups in an index.
    c.batch_execute(
        "CREATE TABLE picks (id INT PRIMARY KEY, ev_id BIGINT, kind TEXT);
         INSERT INTO picks VALUES (1, 7, 'rare_40'), (2, 19999, 'rare_60'), (3, 123456789, 'none');
         ANALYZE picks;",
    )
    .await
    .unwrap();
    let rows = text_rows(
        &c,
        "SELECT p.id, e.n FROM picks p JOIN ev e ON e.id = p.ev_id ORDER BY p.id",
    )
    .await;
    assert_eq!(
        format!("{rows:?}"),
        r#"[[Some("1"), Some("7")], [Some("2"), Some("99")]]"#
    );
    for sql in [
        "SELECT p.id, e.n FROM picks p JOIN ev e ON e.id = p.ev_id",
        "SELECT p.id, e.id FROM picks p JOIN ev e ON e.kind = p.kind",
    ] {
        let p = format!(
            "{:?}",
            text_rows(&c, &format!("EXPLAIN ANALYZE {sql}")).await
        );
        let scan = p
            .split("\n")
            .find(|l| l.contains("HoloScanExec: table=ev"))
            .unwrap_or_default();
        assert!(
            scan.contains("join_filter=") && scan.contains("output_rows=2,"),
            "{sql}: {p}"
        );
    }

    // A fifth of the table written anew: the statistics refresh by
    // themselves and the new common value is read by a full scan.
    c.batch_execute(
        "INSERT INTO ev SELECT i, 'late', 0 FROM generate_series(20001, 26000) AS g(i)",
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = plan(&c, "SELECT * FROM ev WHERE kind = 'late'").await;
        if !p.contains("index=") && est(&p) == Some(6000) {
            break;
        }
        assert!(Instant::now() < deadline, "statistics not refreshed: {p}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
