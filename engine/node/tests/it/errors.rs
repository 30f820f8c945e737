use std::time::Duration;

use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::wire::startup_packet;
use crate::{TestNode, text_rows};

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
