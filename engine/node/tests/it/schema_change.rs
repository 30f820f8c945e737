//! Online schema changes on one node: a CREATE INDEX canceled by the
//! client's cancel request or by `CANCEL JOB` leaves no trace; SHOW JOBS
//! tells what happened; EXPLAIN shows which reads use the index.

use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

use crate::{TestNode, expect_error, text_rows};

/// The (status, step) of the newest job.
async fn newest_job(c: &tokio_postgres::Client) -> Option<(String, String, i64)> {
    let rows = c.simple_query("SHOW JOBS").await.unwrap();
    rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => Some((
            r.get("status").unwrap().to_string(),
            r.get("step").unwrap().to_string(),
            r.get("rows_done").unwrap().parse().unwrap(),
        )),
        _ => None,
    })
}

/// Waits until the newest job ended (a canceled build reverts after its
/// statement returned); returns its (status, step).
async fn wait_ended(c: &tokio_postgres::Client) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, step, _) = newest_job(c).await.unwrap();
        if !["running", "reverting"].contains(&status.as_str()) {
            return (status, step);
        }
        assert!(Instant::now() < deadline, "the job never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the newest job has backfilled some rows.
async fn wait_backfilling(c: &tokio_postgres::Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((status, _, rows)) = newest_job(c).await
            && status == "running"
            && rows > 0
        {
            return;
        }
        assert!(Instant::now() < deadline, "the backfill never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn plan_of(c: &tokio_postgres::Client, sql: &str) -> String {
    text_rows(c, &format!("EXPLAIN {sql}"))
        .await
        .into_iter()
        .filter_map(|r| r.into_iter().nth(1).flatten())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canceled_index_builds_leave_nothing_behind() {
    let node = TestNode::start_with(&[], &[("FAILPOINTS", "sql::backfill_batch=return(150)")]);
    let c = node.client().await;
    c.batch_execute(
        "CREATE TABLE t (id INT PRIMARY KEY, k INT, pad TEXT);
         INSERT INTO t SELECT i, i % 50, 'x' FROM generate_series(1, 4000) AS g(i);",
    )
    .await
    .unwrap();

    // The client's cancel request (psql's Ctrl-C) during the backfill.
    let builder = node.client().await;
    let token = builder.cancel_token();
    let build =
        tokio::spawn(async move { builder.batch_execute("CREATE INDEX t_k ON t (k)").await });
    wait_backfilling(&c).await;
    token.cancel_query(NoTls).await.unwrap();
    let err = build.await.unwrap().unwrap_err();
    assert_eq!(crate::sqlstate(&err), "57014", "{err:?}");
    let (status, step) = wait_ended(&c).await;
    assert_eq!((status.as_str(), step.as_str()), ("canceled", "reverted"));
    expect_error(&c, "DROP INDEX t_k", "42704").await;
    assert!(
        plan_of(&c, "SELECT * FROM t WHERE k = 3")
            .await
            .contains("full scan")
    );

    // CANCEL JOB from another session.
    let builder = node.client().await;
    let build =
        tokio::spawn(async move { builder.batch_execute("CREATE INDEX t_k ON t (k)").await });
    wait_backfilling(&c).await;
    let id = text_rows(&c, "SHOW JOBS").await[0][0].clone().unwrap();
    c.batch_execute(&format!("CANCEL JOB {id}")).await.unwrap();
    let err = build.await.unwrap().unwrap_err();
    assert_eq!(crate::sqlstate(&err), "57014", "{err:?}");
    assert_eq!(wait_ended(&c).await.0, "canceled");
    expect_error(&c, &format!("CANCEL JOB {id}"), "55000").await;
    expect_error(&c, "CANCEL JOB 999999", "42704").await;

    // Built to the end, the index serves selective reads, and agrees with
    // a full scan.
    c.batch_execute("CREATE INDEX t_k ON t (k)").await.unwrap();
    assert_eq!(newest_job(&c).await.unwrap().2, 4000);
    let plan = plan_of(&c, "SELECT id FROM t WHERE k = 3").await;
    assert!(plan.contains("index=t_k"), "{plan}");
    let via_index = text_rows(&c, "SELECT id FROM t WHERE k IN (3, 4) ORDER BY id").await;
    let scanned = text_rows(&c, "SELECT id FROM t WHERE k + 0 IN (3, 4) ORDER BY id").await;
    assert_eq!(via_index.len(), 160);
    assert_eq!(via_index, scanned);
    // A predicate on the primary key keeps the primary index.
    let plan = plan_of(&c, "SELECT id FROM t WHERE id = 3 AND k = 3").await;
    assert!(
        !plan.contains("index=") && plan.contains("point lookup"),
        "{plan}"
    );
}

/// Two hazards of an index that is still being built. A unique index
/// whose old rows have no entry yet: deleting an old row with value K must
/// not delete the entry a new row with K wrote meanwhile. And a
/// transaction that began before the backfill ended must not read the new
/// index (its snapshot misses entries written after it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_snapshots_during_a_build_see_a_consistent_index() {
    let node = TestNode::start_with(&[], &[("FAILPOINTS", "sql::backfill_batch=return(150)")]);
    let c = node.client().await;
    c.batch_execute(
        "CREATE TABLE t (id INT PRIMARY KEY, u INT, k INT);
         INSERT INTO t SELECT i, i + 0, i % 50 FROM generate_series(1, 4000) AS g(i);",
    )
    .await
    .unwrap();
    let builder = node.client().await;
    let build = tokio::spawn(async move {
        builder
            .batch_execute("CREATE UNIQUE INDEX t_u ON t (u)")
            .await
    });
    wait_backfilling(&c).await;
    // Row 4000 is not backfilled yet; row 0 sorts before the resume key.
    c.batch_execute("INSERT INTO t VALUES (0, 4000, 0); DELETE FROM t WHERE id = 4000")
        .await
        .unwrap();
    let snapshot = node.client().await;
    snapshot
        .batch_execute("BEGIN; SELECT 1 FROM t WHERE id = 1")
        .await
        .unwrap();
    build.await.unwrap().unwrap();
    let rows = text_rows(&c, "SELECT id FROM t WHERE u = 4000").await;
    assert_eq!(rows, vec![vec![Some("0".to_string())]]);
    expect_error(&c, "INSERT INTO t VALUES (5000, 4000, 0)", "23505").await;

    // The block's snapshot predates the finished backfill: it reads the
    // table, not the index, and sees every row.
    let plan = plan_of(&snapshot, "SELECT id FROM t WHERE u = 17").await;
    assert!(!plan.contains("index=t_u"), "{plan}");
    let rows = text_rows(
        &snapshot,
        "SELECT count(*) FROM t WHERE u BETWEEN 1 AND 3999",
    )
    .await;
    assert_eq!(rows, vec![vec![Some("3999".to_string())]]);
    snapshot.batch_execute("COMMIT").await.unwrap();
    let plan = plan_of(&c, "SELECT id FROM t WHERE u BETWEEN 1 AND 3999").await;
    assert!(plan.contains("index=t_u"), "{plan}");
    let rows = text_rows(&c, "SELECT count(*) FROM t WHERE u BETWEEN 1 AND 3999").await;
    assert_eq!(rows, vec![vec![Some("3999".to_string())]]);
}
