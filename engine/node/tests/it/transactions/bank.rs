//! Bank transfers between accounts in two ranges, on both protocols and
//! from every node: every snapshot sees the same total.

use super::*;

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
