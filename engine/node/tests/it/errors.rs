use std::time::Duration;

use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::wire::startup_packet;
use crate::{TestNode, expect_error, text_rows};

#[tokio::test]
async fn client_errors_carry_their_sqlstate() {
    let node = TestNode::start();
    let c = node.client().await;
    c.batch_execute(
        "CREATE TABLE t (id INT PRIMARY KEY, name TEXT NOT NULL, qty INT CHECK (qty >= 0));
         INSERT INTO t VALUES (1, 'a', 1)",
    )
    .await
    .unwrap();
    let cases: &[(&str, &str)] = &[
        ("SELECT * FROM missing", "42P01"),
        ("INSERT INTO missing VALUES (1)", "42P01"),
        ("SELECT nope FROM t", "42703"),
        ("UPDATE t SET nope = 1", "42703"),
        ("CREATE TABLE t (id INT PRIMARY KEY)", "42P07"),
        ("INSERT INTO t VALUES (1, 'dup', 0)", "23505"),
        ("INSERT INTO t (id, qty) VALUES (2, 0)", "23502"),
        ("UPDATE t SET name = NULL", "23502"),
        ("INSERT INTO t VALUES (3, 'c', -5)", "23514"),
        ("INSERT INTO t VALUES ('x', 'c', 0)", "22P02"),
        ("SELECT * FROM t WHERE id = 'abc'", "22P02"),
        ("INSERT INTO t VALUES (4000000000, 'c', 0)", "22003"),
        ("SELEC 1", "42601"),
        ("SELECT * FROM t WHERE", "42601"),
        ("INSERT INTO t VALUES (5, 'e', true)", "42804"),
        (
            "INSERT INTO t (id, name) VALUES (6, 'f'), (7, 'g', 1)",
            "42601",
        ),
        ("CREATE INDEX ON t (name)", "0A000"),
        ("ALTER TABLE t ADD COLUMN x INT", "0A000"),
        ("TRUNCATE t", "0A000"),
        (
            "INSERT INTO t VALUES (8, 'h', 0) ON CONFLICT DO NOTHING",
            "0A000",
        ),
        ("DELETE FROM t RETURNING id", "0A000"),
        ("SELECT * FROM t FOR UPDATE", "0A000"),
        ("SAVEPOINT s1", "0A000"),
        ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "0A000"),
        ("SET no_such_setting = 1", "42704"),
        ("SELECT 1 / 0", "22012"),
    ];
    for (sql, code) in cases {
        expect_error(&c, sql, code).await;
    }
    // The session is intact after all those errors, and nothing was written.
    let rows = text_rows(&c, "SELECT id, name, qty FROM t").await;
    assert_eq!(
        rows,
        vec![vec![
            Some("1".to_string()),
            Some("a".to_string()),
            Some("1".to_string())
        ]]
    );
}

async fn send_and_drain(addr: &str, bytes: &[u8]) {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return;
    };
    let _ = s.write_all(bytes).await;
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await;
}

#[tokio::test]
async fn server_survives_arbitrary_bytes() {
    let node = TestNode::start();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x401f);
    for round in 0..60 {
        let len = rng.random_range(1..2048);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        match round % 4 {
            // A valid startup followed by garbage frontend messages.
            0 => {
                let mut pkt = startup_packet();
                pkt.extend_from_slice(&bytes);
                bytes = pkt;
            }
            // Message frames with absurd lengths after startup.
            1 => {
                let mut pkt = startup_packet();
                for tag in [b'Q', b'P', b'B', b'E', b'D', b'X', b'd'] {
                    pkt.push(tag);
                    pkt.extend_from_slice(&rng.random::<u32>().to_be_bytes());
                    pkt.extend_from_slice(&bytes[..bytes.len().min(64)]);
                }
                bytes = pkt;
            }
            // A startup packet claiming a huge length.
            2 => {
                let n = bytes.len().min(4);
                bytes[..n].copy_from_slice(&[0x7f, 0xff, 0xff, 0xff][..n]);
            }
            _ => {}
        }
        send_and_drain(&node.addr, &bytes).await;
    }
    // Bind with parameters that do not decode, on a real session.
    let c = node.client().await;
    c.batch_execute("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    let stmt = c.prepare("SELECT id FROM t WHERE id = $1").await.unwrap();
    assert!(c.query(&stmt, &[&"not-an-int"]).await.is_err());
    // The server still answers, on this connection and on new ones.
    assert_eq!(text_rows(&c, "SELECT 1").await[0][0].as_deref(), Some("1"));
    let c2 = node.client().await;
    assert_eq!(
        text_rows(&c2, "SELECT count(*) FROM t").await[0][0].as_deref(),
        Some("0")
    );
}
