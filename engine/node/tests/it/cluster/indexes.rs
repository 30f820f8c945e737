//! Secondary indexes on a replicated cluster: one unique value raced from
//! every node commits exactly once.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_unique_inserts_on_different_nodes_commit_once() {
    let cluster = TestCluster::start(3, 300);
    let c1 = cluster.client(1).await;
    c1.batch_execute("CREATE TABLE acct (id BIGINT PRIMARY KEY, email TEXT NOT NULL UNIQUE)")
        .await
        .unwrap();
    wait_replicated(&c1, "acct").await;
    let mut clients = vec![Arc::new(c1)];
    for id in [2, 3] {
        let c = cluster.client(id).await;
        eventually(&c, "SELECT 1 FROM acct", Duration::from_secs(10)).await;
        clients.push(Arc::new(c));
    }

    // Every node inserts every value under ids of its own, all at once; a
    // serialization failure is retried, so each insert ends committed or
    // refused as a duplicate.
    const VALUES: i64 = 30;
    let tasks: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(n, c)| {
            let c = c.clone();
            tokio::spawn(async move {
                let mut won = Vec::new();
                for v in 0..VALUES {
                    let id = (n as i64 + 1) * 1000 + v;
                    let email = format!("user{v}@example.com");
                    let deadline = Instant::now() + Duration::from_secs(20);
                    loop {
                        match c
                            .execute("INSERT INTO acct VALUES ($1, $2)", &[&id, &email])
                            .await
                        {
                            Ok(_) => {
                                won.push(v);
                                break;
                            }
                            Err(e) if sqlstate(&e) == "23505" => {
                                let db = e.as_db_error().map(|d| d.message().to_string());
                                assert!(
                                    db.as_deref().is_some_and(|m| m.contains("acct_email_key")),
                                    "{db:?}"
                                );
                                break;
                            }
                            Err(e) if sqlstate(&e) == "40001" && Instant::now() < deadline => {}
                            Err(e) => panic!("insert {id}: {e:?}"),
                        }
                    }
                }
                won
            })
        })
        .collect();
    let mut winners = vec![0; VALUES as usize];
    for t in tasks {
        for v in t.await.unwrap() {
            winners[v as usize] += 1;
        }
    }
    assert!(
        winners.iter().all(|&w| w == 1),
        "each value must commit exactly once: {winners:?}"
    );
    for c in &clients {
        let rows = text_rows(c, "SELECT count(*), count(DISTINCT email) FROM acct").await;
        assert_eq!(
            rows,
            vec![vec![Some(VALUES.to_string()), Some(VALUES.to_string())]]
        );
    }
}

/// `CREATE INDEX` on a table that writers on the other nodes keep
/// inserting into, updating and deleting from; the coordinating node is
/// killed in the middle of the backfill. Another node adopts the job and
/// finishes it; afterwards every read through the index agrees with a full
/// scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn index_build_survives_writers_and_a_killed_coordinator() {
    let extra = Extra {
        args: Vec::new(),
        env: vec![(
            1,
            "FAILPOINTS".into(),
            "sql::backfill_batch=return(400)".into(),
        )],
    };
    let mut cluster = TestCluster::start_with(3, 300, extra);
    let c1 = cluster.client(1).await;
    const ROWS: i64 = 6000;
    const KEYS: i64 = 40;
    c1.batch_execute(&format!(
        "CREATE TABLE items (id BIGINT PRIMARY KEY, k INT, pad TEXT);
         INSERT INTO items SELECT i, i % {KEYS}, 'p' FROM generate_series(1, {ROWS}) AS g(i);"
    ))
    .await
    .unwrap();
    wait_replicated(&c1, "items").await;
    let c2 = Arc::new(cluster.client(2).await);
    eventually(&c2, "SELECT 1 FROM items", Duration::from_secs(10)).await;

    // Writers on nodes 2 and 3 until told to stop.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for node in [2u64, 3] {
        let c = cluster.client(node).await;
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let (mut done, mut retried) = (0u64, 0u64);
            let mut n = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let id = node as i64 * 1_000_000 + n;
                let victim = (n * 7919 + node as i64 * 13) % ROWS + 1;
                let sql = match n % 3 {
                    0 => format!("INSERT INTO items VALUES ({id}, {}, 'w')", n % KEYS),
                    1 => format!(
                        "UPDATE items SET k = {} WHERE id = {victim}",
                        (n + 1) % KEYS
                    ),
                    _ => format!("DELETE FROM items WHERE id = {}", victim + 1),
                };
                match c.batch_execute(&sql).await {
                    Ok(()) => done += 1,
                    Err(e) if ["40001", "40003"].contains(&sqlstate(&e).as_str()) => retried += 1,
                    Err(e) => panic!("{sql}: {e:?}"),
                }
            }
            (done, retried)
        }));
    }

    let build =
        tokio::spawn(async move { c1.batch_execute("CREATE INDEX items_k ON items (k)").await });
    let job_state = |c: Arc<Client>| async move {
        let rows = text_rows(&c, "SHOW JOBS").await;
        // No job yet: the statement has not made its first step.
        let Some(r) = rows.into_iter().next() else {
            return ("none".to_string(), 0);
        };
        (
            r[3].clone().unwrap(),
            r[5].clone().unwrap().parse::<i64>().unwrap(),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, rows) = job_state(c2.clone()).await;
        if status == "running" && rows > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the backfill never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.kill9(1);
    assert!(
        build.await.unwrap().is_err(),
        "the build's client lost its node"
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, _) = job_state(c2.clone()).await;
        if status == "succeeded" {
            break;
        }
        assert_eq!(status, "running");
        assert!(Instant::now() < deadline, "the adopted job never finished");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        let (done, retried) = w.await.unwrap();
        assert!(done > 0, "a writer got nothing done ({retried} retried)");
    }

    // Node 2 learns of the finished job within its catalog poll.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let plan = text_rows(&c2, "EXPLAIN SELECT id FROM items WHERE k = 1").await;
        if format!("{plan:?}").contains("index=items_k") {
            break;
        }
        assert!(Instant::now() < deadline, "{plan:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every comparison at one snapshot: a write whose outcome its client
    // saw as unknown (40003) may still land meanwhile.
    c2.batch_execute("BEGIN").await.unwrap();
    for k in 0..KEYS {
        let via_index = text_rows(
            &c2,
            &format!("SELECT id FROM items WHERE k = {k} ORDER BY id"),
        )
        .await;
        let scanned = text_rows(
            &c2,
            &format!("SELECT id FROM items WHERE k + 0 = {k} ORDER BY id"),
        )
        .await;
        assert_eq!(via_index, scanned, "k = {k}");
    }
    let total = text_rows(&c2, "SELECT count(*) FROM items WHERE k >= 0").await;
    let all = text_rows(&c2, "SELECT count(*) FROM items").await;
    assert_eq!(total, all);
    c2.batch_execute("COMMIT").await.unwrap();
}
