//! Transactions through the wire: write-write conflicts (40001 naming the
//! table), atomic aborts across ranges, bank transfers under concurrency,
//! coordinator crashes between the phases of a two-phase commit, and
//! multi-statement blocks on both protocols, on a three-node cluster; two
//! protocol checks on a single node. Every wait is bounded.
//!
//! The crash tests pause node 3's commits with the failpoints
//! `txn::after_prewrite` and `txn::after_primary_commit` (`holo_kv::txn`),
//! set on node 3 only through `FAILPOINTS` in `TestCluster::start_with`.

mod bank;
mod blocks;
mod crash;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, IsolationLevel, SimpleQueryMessage};

use crate::cluster::{Extra, TestCluster, eventually, ranges, wait_replicated};
use crate::{TestNode, expect_error, message, sqlstate, text_rows};

/// Bound of every wait that may include a failover or a lock's TTL.
const WAIT: Duration = Duration::from_secs(30);
/// Node 3 pauses its two-phase commits after the prewrites.
const PAUSE_AFTER_PREWRITE: &str = holo_kv::txn::AFTER_PREWRITE;
/// Node 3 pauses its two-phase commits after the primary's commit.
const PAUSE_AFTER_PRIMARY_COMMIT: &str = holo_kv::txn::AFTER_PRIMARY_COMMIT;

fn is_retryable(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE)
        || e.code() == Some(&SqlState::T_R_STATEMENT_COMPLETION_UNKNOWN)
}

/// `e` is a 40001 whose message names `table`.
fn assert_conflict(e: &tokio_postgres::Error, table: &str) {
    assert_eq!(
        e.code(),
        Some(&SqlState::T_R_SERIALIZATION_FAILURE),
        "expected 40001, got {e:?}"
    );
    let msg = message(e);
    assert!(
        msg.contains(&format!("\"{table}\"")),
        "the 40001 message must name table \"{table}\": {msg}"
    );
}

fn rows(pairs: &[(i64, &str)]) -> Vec<(i64, String)> {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

fn id_v_of(msgs: Vec<SimpleQueryMessage>) -> Vec<(i64, String)> {
    msgs.into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((
                r.get(0).unwrap().parse().unwrap(),
                r.get(1).unwrap().to_string(),
            )),
            _ => None,
        })
        .collect()
}

/// `(id, v)` rows of `sql` over the simple protocol.
async fn id_v(c: &Client, sql: &str) -> Vec<(i64, String)> {
    id_v_of(
        c.simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql:?} failed: {e:?}")),
    )
}

/// `(id, v)` rows of `sql`, retrying 40001 (a lock wait, a range failing
/// over) until `limit` has passed.
async fn id_v_retrying(c: &Client, sql: &str, limit: Duration) -> Vec<(i64, String)> {
    let deadline = Instant::now() + limit;
    loop {
        match c.simple_query(sql).await {
            Ok(msgs) => return id_v_of(msgs),
            Err(e)
                if e.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE)
                    && Instant::now() < deadline =>
            {
                eprintln!("retrying {sql:?}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{sql:?} failed: {e:?}"),
        }
    }
}

/// Runs `sql` in autocommit over the extended protocol, retrying 40001
/// until `limit` has passed; returns the affected rows.
async fn execute_retrying(c: &Client, sql: &str, limit: Duration) -> u64 {
    let deadline = Instant::now() + limit;
    loop {
        match c.execute(sql, &[]).await {
            Ok(n) => return n,
            Err(e)
                if e.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE)
                    && Instant::now() < deadline =>
            {
                eprintln!("retrying {sql:?}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{sql:?} failed: {e:?}"),
        }
    }
}

async fn counter(c: &Client, id: i64) -> i64 {
    let r = text_rows(c, &format!("SELECT v FROM counters WHERE id = {id}")).await;
    r[0][0].as_deref().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_of_one_row_exactly_one_commits() {
    let cluster = TestCluster::start(3, 20_000);
    let c1 = cluster.client(1).await;
    c1.batch_execute("CREATE TABLE counters (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)")
        .await
        .unwrap();
    wait_replicated(&c1, "counters").await;
    c1.batch_execute("INSERT INTO counters VALUES (1, 0), (2, 0)")
        .await
        .unwrap();
    let a = cluster.client(2).await;
    let mut b = cluster.client(3).await;
    for c in [&a, &b] {
        eventually(
            c,
            "SELECT v FROM counters WHERE id = 1",
            Duration::from_secs(10),
        )
        .await;
    }

    // Both blocks read the same version and commit at the same time: exactly
    // one commits, the other gets 40001 naming the table, and the value is
    // the winner's (no lost update).
    for round in 1..=3i64 {
        let (inc_a, inc_b) = (round * 10 + 1, round * 10 + 2);
        let before = counter(&c1, 1).await;
        a.batch_execute(&format!(
            "BEGIN; UPDATE counters SET v = v + {inc_a} WHERE id = 1"
        ))
        .await
        .unwrap();
        b.batch_execute(&format!(
            "BEGIN; UPDATE counters SET v = v + {inc_b} WHERE id = 1"
        ))
        .await
        .unwrap();
        let (ra, rb) = timeout(WAIT, async {
            tokio::join!(a.batch_execute("COMMIT"), b.batch_execute("COMMIT"))
        })
        .await
        .expect("concurrent COMMITs hung");
        let winner = match (ra, rb) {
            (Ok(()), Err(e)) => {
                assert_conflict(&e, "counters");
                inc_a
            }
            (Err(e), Ok(())) => {
                assert_conflict(&e, "counters");
                inc_b
            }
            (ra, rb) => panic!("exactly one COMMIT must succeed, got {ra:?} and {rb:?}"),
        };
        for c in [&c1, &a, &b] {
            assert_eq!(counter(c, 1).await, before + winner, "round {round}");
        }
    }

    // The later committer loses even when it writes after the winner
    // committed: it read the row before the winner committed, so its
    // snapshot is older than the winner's commit (as in PostgreSQL's
    // REPEATABLE READ, where that read fixes the snapshot).
    let before = counter(&c1, 1).await;
    a.batch_execute("BEGIN").await.unwrap();
    let tx = b.transaction().await.unwrap();
    let seen: i64 = tx
        .query_one("SELECT v FROM counters WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seen, before);
    a.execute(
        "UPDATE counters SET v = v + $1 WHERE id = $2",
        &[&100i64, &1i64],
    )
    .await
    .unwrap();
    a.batch_execute("COMMIT").await.unwrap();
    let updated = tx
        .execute(
            "UPDATE counters SET v = v + $1 WHERE id = $2",
            &[&1000i64, &1i64],
        )
        .await
        .unwrap();
    assert_eq!(updated, 1);
    let e = tx.commit().await.unwrap_err();
    assert_conflict(&e, "counters");
    assert_eq!(counter(&c1, 1).await, before + 100);

    // DELETE against UPDATE of one row: one of them, entirely.
    a.batch_execute("BEGIN; DELETE FROM counters WHERE id = 2")
        .await
        .unwrap();
    b.batch_execute("BEGIN; UPDATE counters SET v = 7 WHERE id = 2")
        .await
        .unwrap();
    let (ra, rb) = timeout(WAIT, async {
        tokio::join!(a.batch_execute("COMMIT"), b.batch_execute("COMMIT"))
    })
    .await
    .expect("concurrent COMMITs hung");
    let want: Vec<Vec<Option<String>>> = match (ra, rb) {
        (Ok(()), Err(e)) => {
            assert_conflict(&e, "counters");
            vec![]
        }
        (Err(e), Ok(())) => {
            assert_conflict(&e, "counters");
            vec![vec![Some("7".to_string())]]
        }
        (ra, rb) => panic!("exactly one COMMIT must succeed, got {ra:?} and {rb:?}"),
    };
    for c in [&c1, &a, &b] {
        assert_eq!(
            text_rows(c, "SELECT v FROM counters WHERE id = 2").await,
            want
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conflict_in_one_range_aborts_the_transaction_in_every_range() {
    let cluster = TestCluster::start(3, 20_000);
    let c1 = cluster.client(1).await;
    c1.batch_execute("CREATE TABLE spread (id BIGINT PRIMARY KEY, v TEXT NOT NULL)")
        .await
        .unwrap();
    wait_replicated(&c1, "spread").await;
    text_rows(
        &c1,
        "ALTER TABLE spread SPLIT AT VALUES (100), (200), (300)",
    )
    .await;
    wait_replicated(&c1, "spread").await;
    let starts: BTreeSet<String> = text_rows(&c1, "SHOW RANGES FROM TABLE spread")
        .await
        .into_iter()
        .map(|r| r[1].clone().unwrap())
        .collect();
    for k in [100, 200, 300] {
        assert!(
            starts.contains(&format!("(id)=({k})")),
            "no range of spread starts at {k}: {starts:?}"
        );
    }
    // One span per range; every id of this test is below 1000.
    let spans = [(0i64, 100i64), (100, 200), (200, 300), (300, 1000)];
    c1.batch_execute(
        "INSERT INTO spread VALUES (50, 'base'), (150, 'base'), (250, 'base'), (350, 'base')",
    )
    .await
    .unwrap();
    let mut expected: BTreeMap<i64, String> = [50, 150, 250, 350]
        .into_iter()
        .map(|k| (k, "base".to_string()))
        .collect();
    let loser = cluster.client(2).await;
    let winner = cluster.client(3).await;
    for c in [&loser, &winner] {
        eventually(c, "SELECT 1 FROM spread LIMIT 1", Duration::from_secs(10)).await;
    }

    // The conflict lands in a range of secondaries only (250), then in the
    // range of the primary, the smallest key written (50 is next to it).
    for (round, conflict) in [(1i64, 250i64), (2, 50)] {
        let fresh: Vec<i64> = [0i64, 100, 200, 300]
            .iter()
            .map(|b| b + round * 10)
            .collect();
        let values = |v: &str| {
            fresh
                .iter()
                .map(|k| format!("({k}, '{v}')"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        loser
            .batch_execute(&format!(
                "BEGIN; INSERT INTO spread VALUES {}; \
                 UPDATE spread SET v = 'loser' WHERE id IN (50, 150, 250, 350)",
                values("loser")
            ))
            .await
            .unwrap();
        // Its own writes in all four ranges are visible to the block.
        let own = text_rows(&loser, "SELECT count(*) FROM spread WHERE v = 'loser'").await;
        assert_eq!(own[0][0].as_deref(), Some("8"));
        // Another transaction commits a write to one of those rows after the
        // block's snapshot.
        let theirs = format!("winner-{round}");
        winner
            .batch_execute(&format!(
                "UPDATE spread SET v = '{theirs}' WHERE id = {conflict}"
            ))
            .await
            .unwrap();
        expected.insert(conflict, theirs);
        let e = timeout(WAIT, loser.batch_execute("COMMIT"))
            .await
            .expect("COMMIT hung")
            .unwrap_err();
        assert_conflict(&e, "spread");

        // No range shows any of the loser's writes, read from any node.
        for (node, c) in [(1, &c1), (2, &loser), (3, &winner)] {
            for (lo, hi) in spans {
                let got = id_v(
                    c,
                    &format!("SELECT id, v FROM spread WHERE id >= {lo} AND id < {hi} ORDER BY id"),
                )
                .await;
                let want: Vec<(i64, String)> = expected
                    .range(lo..hi)
                    .map(|(k, v)| (*k, v.clone()))
                    .collect();
                assert_eq!(got, want, "round {round}, node {node}, ids [{lo}, {hi})");
            }
        }
        // Nothing of the loser blocks its keys: they take new rows.
        let started = Instant::now();
        let inserted = execute_retrying(
            &winner,
            &format!("INSERT INTO spread VALUES {}", values("later")),
            WAIT,
        )
        .await;
        assert_eq!(inserted, 4);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "writes to the aborted transaction's keys waited {:?}",
            started.elapsed()
        );
        for k in &fresh {
            expected.insert(*k, "later".to_string());
        }
        let all: Vec<(i64, String)> = expected.iter().map(|(k, v)| (*k, v.clone())).collect();
        assert_eq!(id_v(&c1, "SELECT id, v FROM spread ORDER BY id").await, all);
    }
}
