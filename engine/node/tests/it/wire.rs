//! A raw PostgreSQL protocol client for tests that send what no driver
//! would: lying lengths, broken layouts, oversized messages.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for any one answer: a longer wait is a hang.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// A backend message: type byte and body.
#[derive(Debug, Clone)]
pub struct Msg {
    pub kind: u8,
    pub body: Vec<u8>,
}

impl Msg {
    /// A field of an ErrorResponse/NoticeResponse (`b'C'`: SQLSTATE,
    /// `b'S'`: severity, `b'M'`: message).
    pub fn field(&self, code: u8) -> Option<String> {
        let mut rest = &self.body[..];
        while let Some((&c, tail)) = rest.split_first() {
            if c == 0 {
                return None;
            }
            let end = tail.iter().position(|b| *b == 0)?;
            if c == code {
                return Some(String::from_utf8_lossy(&tail[..end]).into_owned());
            }
            rest = &tail[end + 1..];
        }
        None
    }
}

/// A StartupMessage for user `postgres`, database `holo`.
pub fn startup_packet() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196608u32.to_be_bytes());
    for kv in ["user", "postgres", "database", "holo"] {
        body.extend_from_slice(kv.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut pkt = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    pkt.extend(body);
    pkt
}

/// A frontend message of `kind` with `body`.
pub fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// A Query message.
pub fn query(sql: &str) -> Vec<u8> {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    message(b'Q', &body)
}

/// A Sync message.
pub fn sync() -> Vec<u8> {
    message(b'S', &[])
}

/// A raw connection.
pub struct Raw {
    pub stream: TcpStream,
}

impl Raw {
    /// Connects without sending anything.
    pub async fn connect(addr: &str) -> Raw {
        Raw {
            stream: TcpStream::connect(addr).await.expect("connect"),
        }
    }

    /// Connects and completes startup (up to the first ReadyForQuery).
    pub async fn session(addr: &str) -> Raw {
        let mut raw = Raw::connect(addr).await;
        raw.send(&startup_packet()).await;
        raw.until_ready().await.expect("startup answered");
        raw
    }

    /// Sends bytes (errors ignored: the server may have closed).
    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// The next message, `None` when the server closed the connection.
    /// Panics when nothing arrives within [`ANSWER_WITHIN`].
    pub async fn recv(&mut self) -> Option<Msg> {
        let read = async {
            let mut head = [0u8; 5];
            self.stream.read_exact(&mut head).await.ok()?;
            let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
            let mut body = vec![0u8; len.checked_sub(4)?];
            self.stream.read_exact(&mut body).await.ok()?;
            Some(Msg {
                kind: head[0],
                body,
            })
        };
        tokio::time::timeout(ANSWER_WITHIN, read)
            .await
            .expect("the server did not answer within 10 s")
    }

    /// Messages up to and including ReadyForQuery; `None` if the
    /// connection closed first (then the messages read are lost).
    pub async fn until_ready(&mut self) -> Option<Vec<Msg>> {
        let mut out = Vec::new();
        loop {
            let m = self.recv().await?;
            let done = m.kind == b'Z';
            out.push(m);
            if done {
                return Some(out);
            }
        }
    }

    /// The messages until the server closes the connection.
    pub async fn until_closed(&mut self) -> Vec<Msg> {
        let mut out = Vec::new();
        while let Some(m) = self.recv().await {
            out.push(m);
        }
        out
    }

    /// Runs a simple query; the answer's messages.
    pub async fn simple(&mut self, sql: &str) -> Vec<Msg> {
        self.send(&query(sql)).await;
        self.until_ready().await.expect("query answered")
    }
}

/// The SQLSTATE of the first ErrorResponse in `msgs`.
pub fn error_code(msgs: &[Msg]) -> Option<String> {
    msgs.iter()
        .find(|m| m.kind == b'E')
        .and_then(|m| m.field(b'C'))
}

/// The first column of the first DataRow in `msgs`, as text.
pub fn first_value(msgs: &[Msg]) -> Option<String> {
    let row = msgs.iter().find(|m| m.kind == b'D')?;
    let len = i32::from_be_bytes(row.body.get(2..6)?.try_into().ok()?);
    let len = usize::try_from(len).ok()?;
    Some(String::from_utf8_lossy(row.body.get(6..6 + len)?).into_owned())
}

/// Asserts that a fresh session on `addr` still answers `SELECT 1`.
pub async fn assert_serving(addr: &str) {
    let mut raw = Raw::session(addr).await;
    let answer = raw.simple("SELECT 1").await;
    assert_eq!(first_value(&answer).as_deref(), Some("1"), "{answer:?}");
}
