use crate::{TestNode, text_rows};

#[tokio::test]
async fn acknowledged_writes_survive_kill9_and_restart() {
    let mut node = TestNode::start();
    {
        let c = node.client().await;
        c.batch_execute("CREATE TABLE events (id BIGINT PRIMARY KEY, payload TEXT NOT NULL)")
            .await
            .unwrap();
        let insert = c
            .prepare("INSERT INTO events VALUES ($1, $2)")
            .await
            .unwrap();
        for i in 0..200i64 {
            c.execute(&insert, &[&i, &format!("event-{i}")])
                .await
                .unwrap();
        }
        c.execute("UPDATE events SET payload = 'updated' WHERE id < 10", &[])
            .await
            .unwrap();
        c.execute("DELETE FROM events WHERE id >= 190", &[])
            .await
            .unwrap();
        c.batch_execute(
            "INSERT INTO events SELECT value + 1000, 'bulk' FROM generate_series(1, 5000)",
        )
        .await
        .unwrap();
    }
    // No shutdown: SIGKILL right after the last acknowledgement.
    node.restart();
    let c = node.client().await;
    let rows = text_rows(
        &c,
        "SELECT count(*), sum(CASE WHEN payload = 'updated' THEN 1 ELSE 0 END), min(id), max(id) FROM events",
    )
    .await;
    assert_eq!(
        rows[0],
        vec![
            Some("5190".to_string()),
            Some("10".to_string()),
            Some("0".to_string()),
            Some("6000".to_string())
        ]
    );
    // The catalog came back too: the table accepts new rows and rejects duplicates.
    c.batch_execute("INSERT INTO events VALUES (7000, 'after restart')")
        .await
        .unwrap();
    assert!(
        c.batch_execute("INSERT INTO events VALUES (5, 'dup')")
            .await
            .is_err()
    );
    // And survives a second kill.
    node.restart();
    let c = node.client().await;
    let rows = text_rows(&c, "SELECT payload FROM events WHERE id = 7000").await;
    assert_eq!(rows[0][0].as_deref(), Some("after restart"));
}
