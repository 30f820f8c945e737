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
