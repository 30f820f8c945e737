//! Transactions through the wire: write-write conflicts (40001 naming the
//! table), atomic aborts across ranges, bank transfers under concurrency,
//! coordinator crashes between the phases of a two-phase commit, and
//! multi-statement blocks on both protocols, on a three-node cluster; two
//! protocol checks on a single node. Every wait is bounded.
//!
//! The crash tests pause node 3's commits with the failpoints
//! `txn::after_prewrite` and `txn::after_primary_commit` (`holo_kv::txn`),
//! set on node 3 only through `FAILPOINTS` in `TestCluster::start_with`.

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
    // committed: its snapshot is older than the winner's commit.
    let before = counter(&c1, 1).await;
    a.batch_execute("BEGIN").await.unwrap();
    let tx = b.transaction().await.unwrap();
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

/// What one bank worker did.
struct TransferReport {
    committed: u64,
    retried: u64,
    ambiguous: u64,
    /// Net change per account of the committed transfers.
    deltas: Vec<i64>,
}

/// One transfer in a block over the simple protocol.
async fn transfer_simple(
    c: &Client,
    from: i64,
    to: i64,
    amount: i64,
) -> Result<(), tokio_postgres::Error> {
    c.batch_execute(&format!(
        "BEGIN; UPDATE bank SET balance = balance - {amount} WHERE id = {from}; \
         UPDATE bank SET balance = balance + {amount} WHERE id = {to}; COMMIT"
    ))
    .await
}

/// One transfer in a block over the extended protocol.
async fn transfer_extended(
    c: &mut Client,
    from: i64,
    to: i64,
    amount: i64,
) -> Result<(), tokio_postgres::Error> {
    let tx = c
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .start()
        .await?;
    let debit = tx
        .execute(
            "UPDATE bank SET balance = balance - $1 WHERE id = $2",
            &[&amount, &from],
        )
        .await?;
    let credit = tx
        .execute(
            "UPDATE bank SET balance = balance + $1 WHERE id = $2",
            &[&amount, &to],
        )
        .await?;
    assert_eq!((debit, credit), (1, 1), "transfer {from} -> {to}");
    tx.commit().await
}

async fn simple_i64(c: &Client, sql: &str) -> Result<i64, tokio_postgres::Error> {
    let msgs = c.simple_query(sql).await?;
    Ok(msgs
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(|v| v.parse().unwrap()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{sql:?} returned no value")))
}

/// The total and the two halves' totals, read in one read-only block
/// (simple protocol).
async fn sums_simple(c: &Client) -> Result<(i64, i64, i64), tokio_postgres::Error> {
    c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let all = simple_i64(c, "SELECT sum(balance) FROM bank").await?;
    let low = simple_i64(c, "SELECT sum(balance) FROM bank WHERE id < 15").await?;
    let high = simple_i64(c, "SELECT sum(balance) FROM bank WHERE id >= 15").await?;
    c.batch_execute("COMMIT").await?;
    Ok((all, low, high))
}

/// The same over the extended protocol.
async fn sums_extended(c: &mut Client) -> Result<(i64, i64, i64), tokio_postgres::Error> {
    let tx = c
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let all: i64 = tx
        .query_one("SELECT sum(balance) FROM bank", &[])
        .await?
        .get(0);
    let low: i64 = tx
        .query_one("SELECT sum(balance) FROM bank WHERE id < $1", &[&15i64])
        .await?
        .get(0);
    let high: i64 = tx
        .query_one("SELECT sum(balance) FROM bank WHERE id >= $1", &[&15i64])
        .await?
        .get(0);
    tx.commit().await?;
    Ok((all, low, high))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bank_transfers_keep_the_total_in_every_snapshot() {
    const ACCOUNTS: i64 = 30;
    const INITIAL: i64 = 1_000;
    const TOTAL: i64 = ACCOUNTS * INITIAL;
    let cluster = TestCluster::start(3, 20_000);
    let c1 = cluster.client(1).await;
    c1.batch_execute("CREATE TABLE bank (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL)")
        .await
        .unwrap();
    wait_replicated(&c1, "bank").await;
    text_rows(&c1, "ALTER TABLE bank SPLIT AT VALUES (10), (20)").await;
    wait_replicated(&c1, "bank").await;
    let rs = ranges(&c1, "bank").await;
    assert!(rs.len() >= 3, "expected three ranges: {rs:?}");
    c1.batch_execute(&format!(
        "INSERT INTO bank SELECT value, {INITIAL} FROM generate_series(0, {})",
        ACCOUNTS - 1
    ))
    .await
    .unwrap();

    // Transfers for about 5 s from four clients on all nodes (simple and
    // extended protocol), each retried on 40001/40003.
    let stop_at = Instant::now() + Duration::from_secs(5);
    let mut workers: Vec<JoinHandle<TransferReport>> = Vec::new();
    for w in 0..4u64 {
        let mut client = cluster.client(w % 3 + 1).await;
        eventually(
            &client,
            "SELECT 1 FROM bank LIMIT 1",
            Duration::from_secs(10),
        )
        .await;
        workers.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(0xBA4C + w);
            let mut report = TransferReport {
                committed: 0,
                retried: 0,
                ambiguous: 0,
                deltas: vec![0; ACCOUNTS as usize],
            };
            'transfers: while Instant::now() < stop_at {
                let from = rng.random_range(0..ACCOUNTS);
                let to = (from + rng.random_range(1..ACCOUNTS)) % ACCOUNTS;
                let amount = rng.random_range(1..=50i64);
                loop {
                    let result = if w % 2 == 0 {
                        transfer_simple(&client, from, to, amount).await
                    } else {
                        transfer_extended(&mut client, from, to, amount).await
                    };
                    match result {
                        Ok(()) => {
                            report.committed += 1;
                            report.deltas[from as usize] -= amount;
                            report.deltas[to as usize] += amount;
                            break;
                        }
                        Err(e) if is_retryable(&e) => {
                            if e.code() == Some(&SqlState::T_R_STATEMENT_COMPLETION_UNKNOWN) {
                                report.ambiguous += 1;
                            }
                            report.retried += 1;
                            // Leave a failed block before retrying.
                            client.batch_execute("ROLLBACK").await.unwrap();
                            if Instant::now() >= stop_at {
                                break 'transfers;
                            }
                        }
                        Err(e) => panic!("transfer {from} -> {to} failed: {e:?}"),
                    }
                }
            }
            report
        }));
    }

    // Meanwhile two readers on other nodes sum all balances in read-only
    // blocks: every snapshot holds the initial total.
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers: Vec<JoinHandle<u64>> = Vec::new();
    for node in [3u64, 2] {
        let mut client = cluster.client(node).await;
        eventually(
            &client,
            "SELECT 1 FROM bank LIMIT 1",
            Duration::from_secs(10),
        )
        .await;
        let stop = stop.clone();
        readers.push(tokio::spawn(async move {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let sums = if node == 3 {
                    sums_extended(&mut client).await
                } else {
                    sums_simple(&client).await
                };
                match sums {
                    Ok((all, low, high)) => {
                        assert_eq!(all, TOTAL, "node {node}: a snapshot saw a partial transfer");
                        assert_eq!(
                            low + high,
                            TOTAL,
                            "node {node}: two reads of one snapshot disagree"
                        );
                        reads += 1;
                    }
                    Err(e) if is_retryable(&e) => {
                        client.batch_execute("ROLLBACK").await.unwrap();
                    }
                    Err(e) => panic!("node {node}: snapshot read failed: {e:?}"),
                }
            }
            reads
        }));
    }

    let mut deltas = vec![0i64; ACCOUNTS as usize];
    let (mut committed, mut retried, mut ambiguous) = (0u64, 0u64, 0u64);
    for w in workers {
        let r = timeout(WAIT, w)
            .await
            .expect("a transfer worker hung")
            .unwrap();
        committed += r.committed;
        retried += r.retried;
        ambiguous += r.ambiguous;
        for (d, x) in deltas.iter_mut().zip(&r.deltas) {
            *d += x;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut reads = 0;
    for r in readers {
        let n = timeout(WAIT, r).await.expect("a reader hung").unwrap();
        assert!(n > 0, "a reader never completed a snapshot read");
        reads += n;
    }
    eprintln!(
        "bank: {committed} transfers committed, {retried} retries ({ambiguous} ambiguous), \
         {reads} snapshot reads"
    );
    assert!(committed >= 10, "only {committed} transfers committed");

    // After the run: the same total on every node, and (when no commit was
    // ambiguous) exactly the committed transfers applied.
    for node in 1..=3 {
        let c = cluster.client(node).await;
        let r = text_rows(&c, "SELECT count(*), sum(balance) FROM bank").await;
        assert_eq!(
            r,
            vec![vec![Some(ACCOUNTS.to_string()), Some(TOTAL.to_string())]],
            "node {node}"
        );
    }
    if ambiguous == 0 {
        let balances: Vec<(i64, i64)> = text_rows(&c1, "SELECT id, balance FROM bank ORDER BY id")
            .await
            .into_iter()
            .map(|r| {
                (
                    r[0].as_deref().unwrap().parse().unwrap(),
                    r[1].as_deref().unwrap().parse().unwrap(),
                )
            })
            .collect();
        let want: Vec<(i64, i64)> = (0..ACCOUNTS)
            .map(|i| (i, INITIAL + deltas[i as usize]))
            .collect();
        assert_eq!(
            balances, want,
            "a transfer acknowledged as committed is missing, or a failed one was applied"
        );
    }
}
