//! Transactions through the wire: write-write conflicts (40001 naming the
//! table), atomic aborts across ranges, bank transfers under concurrency,
//! coordinator crashes between the phases of a two-phase commit, and
//! multi-statement blocks on both protocols, on a three-node cluster; two
//! protocol checks on a single node. Every wait is bounded.
//!
//! The crash tests need the test hooks `HOLO_TEST_PAUSE_AFTER_PREWRITE_MS`
//! and `HOLO_TEST_PAUSE_AFTER_PRIMARY_COMMIT_MS` (`holo_kv::txn`), set on
//! node 3 only through `TestCluster::start_with`.

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
const PAUSE_AFTER_PREWRITE: &str = "HOLO_TEST_PAUSE_AFTER_PREWRITE_MS";
/// Node 3 pauses its two-phase commits after the primary's commit.
const PAUSE_AFTER_PRIMARY_COMMIT: &str = "HOLO_TEST_PAUSE_AFTER_PRIMARY_COMMIT_MS";

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

/// The leaseholder of the meta range (the timestamp oracle), per
/// `holoctl ranges` (`range span-start span-end replicas leaseholder ...`).
fn meta_leaseholder(cluster: &TestCluster) -> Option<u64> {
    cluster.holoctl(1, &["ranges"]).lines().find_map(|l| {
        let t: Vec<&str> = l.split_whitespace().collect();
        if t.first() == Some(&"1") && t.len() >= 5 {
            t[4].parse().ok()
        } else {
            None
        }
    })
}

/// Moves the leases of `table`'s two ranges to the two nodes other than
/// `node`, one each (the lease balancer then has nothing to move), and the
/// meta range's lease off `node`.
async fn keep_leases_off(cluster: &TestCluster, c: &Client, table: &str, node: u64) {
    let rs = ranges(c, table).await;
    assert_eq!(rs.len(), 2, "expected two ranges of {table}: {rs:?}");
    let holder = |i: usize| rs[i].2.as_deref().and_then(|l| l.parse::<u64>().ok());
    let others: Vec<u64> = (1..=3).filter(|n| *n != node).collect();
    let other_than = |n: u64| others.iter().copied().find(|o| *o != n).unwrap();
    let first = match (holder(0), holder(1)) {
        (Some(a), _) if a != node => a,
        (_, Some(b)) if b != node => other_than(b),
        _ => others[0],
    };
    let second = other_than(first);
    for (i, to) in [(0, first), (1, second)] {
        if holder(i) != Some(to) {
            cluster.holoctl(1, &["transfer-lease", &rs[i].0, &to.to_string()]);
        }
    }
    if meta_leaseholder(cluster) == Some(node) {
        cluster.holoctl(1, &["transfer-lease", "1", &others[0].to_string()]);
    }
    let now = ranges(c, table).await;
    if now
        .iter()
        .any(|r| r.2.as_deref() == Some(node.to_string().as_str()))
    {
        eprintln!("a lease of {table} is on node {node} again: {now:?}");
    }
}

const CRASH_ROWS: &str = "SELECT id, v FROM crash ORDER BY id";

/// A cluster whose node 3 pauses every two-phase commit for 15 s at `hook`;
/// table `crash` in two ranges (split at 100) holding rows 50 and 150, with
/// the leases on nodes 1 and 2. Returns clients of nodes 1, 2 and 3.
async fn crash_setup(hook: &str) -> (TestCluster, Client, Client, Client) {
    let extra = Extra {
        args: Vec::new(),
        env: vec![(3, hook.to_string(), "15000".to_string())],
    };
    let cluster = TestCluster::start_with(3, 20_000, extra);
    let c1 = cluster.client(1).await;
    c1.batch_execute("CREATE TABLE crash (id BIGINT PRIMARY KEY, v TEXT NOT NULL)")
        .await
        .unwrap();
    wait_replicated(&c1, "crash").await;
    text_rows(&c1, "ALTER TABLE crash SPLIT AT VALUES (100)").await;
    wait_replicated(&c1, "crash").await;
    c1.batch_execute("INSERT INTO crash VALUES (50, 'base'), (150, 'base')")
        .await
        .unwrap();
    keep_leases_off(&cluster, &c1, "crash", 3).await;
    let c2 = cluster.client(2).await;
    let c3 = cluster.client(3).await;
    for c in [&c2, &c3] {
        eventually(c, "SELECT 1 FROM crash LIMIT 1", Duration::from_secs(10)).await;
    }
    // Node 3 has routed to both ranges before it coordinates.
    assert_eq!(
        id_v(&c3, CRASH_ROWS).await,
        rows(&[(50, "base"), (150, "base")])
    );
    (cluster, c1, c2, c3)
}

/// On node 3: a block writing two rows in each range, then COMMIT in the
/// background; returns the pending COMMIT once it is known to be paused.
async fn commit_paused_on_node_3(
    c3: Client,
    hook: &str,
) -> JoinHandle<Result<(), tokio_postgres::Error>> {
    c3.batch_execute(
        "BEGIN; INSERT INTO crash VALUES (10, 'txn'), (110, 'txn'); \
         UPDATE crash SET v = 'txn' WHERE id IN (50, 150)",
    )
    .await
    .unwrap();
    assert_eq!(
        id_v(&c3, CRASH_ROWS).await,
        rows(&[(10, "txn"), (50, "txn"), (110, "txn"), (150, "txn")])
    );
    let commit = tokio::spawn(async move { c3.batch_execute("COMMIT").await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !commit.is_finished(),
        "COMMIT on node 3 ended before the kill: does node 3 honour {hook}?"
    );
    commit
}

/// The COMMIT whose node was killed ends, without success.
async fn assert_commit_lost(commit: JoinHandle<Result<(), tokio_postgres::Error>>) {
    let result = timeout(Duration::from_secs(10), commit)
        .await
        .expect("COMMIT on the killed node did not end")
        .unwrap();
    assert!(
        result.is_err(),
        "COMMIT succeeded although its node was killed before finishing it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coordinator_killed_between_prewrite_and_commit_leaves_nothing() {
    let (mut cluster, c1, c2, c3) = crash_setup(PAUSE_AFTER_PREWRITE).await;
    let commit = commit_paused_on_node_3(c3, PAUSE_AFTER_PREWRITE).await;
    // Every key is prewritten (locked) and the primary is not committed.
    cluster.kill9(3);
    assert_commit_lost(commit).await;

    // Readers on the other nodes are not held up by the dead transaction's
    // locks and see none of its writes, by scan and by point read.
    let base = rows(&[(50, "base"), (150, "base")]);
    let started = Instant::now();
    for c in [&c1, &c2] {
        let got = timeout(WAIT, id_v_retrying(c, CRASH_ROWS, WAIT))
            .await
            .expect("a scan hung on the dead transaction's locks");
        assert_eq!(got, base);
        for id in [10i64, 50, 110, 150] {
            let got =
                id_v_retrying(c, &format!("SELECT id, v FROM crash WHERE id = {id}"), WAIT).await;
            let want: Vec<(i64, String)> = base.iter().filter(|r| r.0 == id).cloned().collect();
            assert_eq!(got, want, "id {id}");
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "reads took {:?} after the coordinator died",
        started.elapsed()
    );

    // Writers get the keys once the locks' TTL ran out: the inserts do not
    // meet the dead transaction's rows (it never committed).
    let started = Instant::now();
    assert_eq!(
        execute_retrying(
            &c1,
            "INSERT INTO crash VALUES (10, 'after'), (110, 'after')",
            WAIT
        )
        .await,
        2
    );
    assert_eq!(
        execute_retrying(
            &c1,
            "UPDATE crash SET v = 'after' WHERE id IN (50, 150)",
            WAIT
        )
        .await,
        2
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "writes to the dead transaction's keys waited {:?}",
        started.elapsed()
    );
    let after = rows(&[(10, "after"), (50, "after"), (110, "after"), (150, "after")]);
    for c in [&c1, &c2] {
        assert_eq!(id_v_retrying(c, CRASH_ROWS, WAIT).await, after);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coordinator_killed_after_the_primary_commit_leaves_everything() {
    let (mut cluster, c1, c2, c3) = crash_setup(PAUSE_AFTER_PRIMARY_COMMIT).await;
    let commit = commit_paused_on_node_3(c3, PAUSE_AFTER_PRIMARY_COMMIT).await;
    // The primary (id 10) is committed, the secondaries are still locked.
    cluster.kill9(3);
    assert_commit_lost(commit).await;

    // Readers finish the transaction through its committed primary: every
    // row of it, in both ranges, by scan and by point read.
    let txn = rows(&[(10, "txn"), (50, "txn"), (110, "txn"), (150, "txn")]);
    let started = Instant::now();
    for c in [&c1, &c2] {
        let got = timeout(WAIT, id_v_retrying(c, CRASH_ROWS, WAIT))
            .await
            .expect("a scan hung on the dead transaction's locks");
        assert_eq!(got, txn);
        for (id, v) in &txn {
            let got =
                id_v_retrying(c, &format!("SELECT id, v FROM crash WHERE id = {id}"), WAIT).await;
            assert_eq!(got, vec![(*id, v.clone())]);
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "reads took {:?} after the coordinator died",
        started.elapsed()
    );

    // No lock is left in the way of a writer.
    let started = Instant::now();
    assert_eq!(
        execute_retrying(
            &c2,
            "UPDATE crash SET v = 'after' WHERE id IN (10, 50, 110, 150)",
            WAIT
        )
        .await,
        4
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a write to the committed transaction's keys waited {:?}",
        started.elapsed()
    );
    let after = rows(&[(10, "after"), (50, "after"), (110, "after"), (150, "after")]);
    for c in [&c1, &c2] {
        assert_eq!(id_v_retrying(c, CRASH_ROWS, WAIT).await, after);
    }
}

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
