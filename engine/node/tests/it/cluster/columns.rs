//! ALTER TABLE on a replicated cluster while every other node writes: ADD
//! COLUMN with a default, SET NOT NULL, ADD CHECK and DROP COLUMN run
//! online, no write is lost and no client sees an error beyond the
//! retryable ones.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn columns_change_while_every_node_writes() {
    let cluster = TestCluster::start(3, 300);
    let c1 = cluster.client(1).await;
    const ROWS: i64 = 2000;
    c1.batch_execute(&format!(
        "CREATE TABLE acc (id BIGINT PRIMARY KEY, bal INT NOT NULL, tag TEXT);
         INSERT INTO acc SELECT i, 100, 't' FROM generate_series(1, {ROWS}) AS g(i);"
    ))
    .await
    .unwrap();
    wait_replicated(&c1, "acc").await;

    // Writers on nodes 2 and 3: deposits into existing rows and new rows,
    // counting what committed and what may have (40003).
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for node in [2u64, 3] {
        let c = cluster.client(node).await;
        eventually(&c, "SELECT 1 FROM acc", Duration::from_secs(10)).await;
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let (mut committed, mut unknown, mut inserted) = (0i64, 0i64, 0i64);
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let (sql, amount) = if n % 4 == 0 {
                    let id = node as i64 * 1_000_000 + n;
                    (format!("INSERT INTO acc (id, bal) VALUES ({id}, 100)"), 0)
                } else {
                    // Rows 1-50 stay as they are: they break the CHECK
                    // that fails below.
                    let victim = (n * 7919 + node as i64 * 31) % (ROWS - 50) + 51;
                    (
                        format!("UPDATE acc SET bal = bal + 1 WHERE id = {victim}"),
                        1,
                    )
                };
                match c.batch_execute(&sql).await {
                    Ok(()) => {
                        committed += amount;
                        inserted += i64::from(amount == 0);
                    }
                    Err(e) if sqlstate(&e) == "40001" => {}
                    Err(e) if sqlstate(&e) == "40003" => unknown += 1,
                    Err(e) => panic!("{sql}: {e:?}"),
                }
            }
            (committed, unknown, inserted)
        }));
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    c1.batch_execute("ALTER TABLE acc ADD COLUMN score INT NOT NULL DEFAULT 7")
        .await
        .unwrap();
    // Values set now are kept by the other nodes' updates (the writers'
    // conflicts make it retry).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match c1
            .batch_execute("UPDATE acc SET score = 8 WHERE id <= 100")
            .await
        {
            Ok(()) => break,
            Err(e) if sqlstate(&e) == "40001" && Instant::now() < deadline => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    c1.batch_execute("ALTER TABLE acc ADD CONSTRAINT bal_pos CHECK (bal > 0)")
        .await
        .unwrap();
    c1.batch_execute("ALTER TABLE acc ALTER COLUMN tag SET DEFAULT 'd'")
        .await
        .unwrap();
    c1.batch_execute("ALTER TABLE acc DROP COLUMN tag")
        .await
        .unwrap();
    // A constraint being validated binds writers already; the rows break
    // it, so it goes again.
    let err = c1
        .batch_execute("ALTER TABLE acc ADD CONSTRAINT id_big CHECK (id > 50)")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "23514", "{err:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut committed, mut unknown, mut inserted) = (0, 0, 0);
    for w in writers {
        let (c, u, i) = w.await.unwrap();
        assert!(c > 0, "a writer committed nothing");
        (committed, unknown, inserted) = (committed + c, unknown + u, inserted + i);
    }

    // Every node reads the same table: the new column everywhere (the
    // default for every row but the ones set), the dropped one gone, no
    // deposit lost.
    for node in [1u64, 2, 3] {
        let c = cluster.client(node).await;
        let rows = text_rows(
            &c,
            "SELECT count(*), sum(bal), \
                    count(*) FILTER (WHERE score = 8), \
                    count(*) FILTER (WHERE (score IS DISTINCT FROM 7) AND (score IS DISTINCT FROM 8)) FROM acc",
        )
        .await;
        let row = &rows[0];
        let count: i64 = row[0].as_deref().unwrap().parse().unwrap();
        let sum: i64 = row[1].as_deref().unwrap().parse().unwrap();
        let deposits = sum - 100 * count;
        assert!(
            count >= ROWS + inserted && count <= ROWS + inserted + unknown,
            "node {node}: {count} rows, {inserted} inserted, {unknown} unknown"
        );
        assert!(
            deposits >= committed && deposits <= committed + unknown,
            "node {node}: {deposits} deposits, {committed} committed, {unknown} unknown"
        );
        assert_eq!(row[2].as_deref(), Some("100"), "node {node}");
        assert_eq!(row[3].as_deref(), Some("0"), "node {node}");
        let err = c.simple_query("SELECT tag FROM acc").await.unwrap_err();
        assert_eq!(sqlstate(&err), "42703");
        let err = c
            .batch_execute("INSERT INTO acc (id, bal) VALUES (-1, 0)")
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&err), "23514", "node {node}");
    }
}
