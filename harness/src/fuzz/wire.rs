//! The protocol fuzzer: each case is one connection that sends a random
//! sequence of frontend messages (valid ones, ones whose framing is intact
//! but whose counts, lengths, strings or formats lie, and ones that break
//! the framing), then a probe query. The server must answer every case:
//! with the probe's row, or with a FATAL ErrorResponse before it closes.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{ANSWER_WITHIN, Failure};

/// Counts of one run.
#[derive(Debug, Default, Clone)]
pub struct WireStats {
    /// Connections opened.
    pub connections: u64,
    /// Frontend messages sent.
    pub messages: u64,
    /// ErrorResponses received.
    pub errors: u64,
    /// Connections the server closed after a FATAL error.
    pub fatal: u64,
    /// Probe queries answered.
    pub probes: u64,
}

/// How a generated message treats the framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A well-formed message.
    Valid,
    /// Correct type and length, lying contents.
    Lying,
    /// Broken framing: the connection cannot go on.
    Broken,
}

fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// A StartupMessage for user `postgres`, database `holo`.
pub fn startup_packet() -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec();
    for s in ["user", "postgres", "database", "holo"] {
        cstr(&mut body, s);
    }
    body.push(0);
    let mut pkt = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    pkt.extend(body);
    pkt
}

const SQL: &[&str] = &[
    "SELECT 1",
    "SELECT v FROM fuzz_probe WHERE id = $1",
    "SELECT $1::int + $2::int",
    "SELECT $1",
    "SELECT count(*) FROM fuzz_probe",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SELEC 1",
    "",
    "SELECT $100000000000::int",
    "SELECT 1; SELECT 2",
    "SET statement_timeout = '5s'",
];

fn sql(rng: &mut StdRng) -> String {
    SQL[rng.random_range(0..SQL.len())].to_string()
}

fn name(rng: &mut StdRng) -> &'static str {
    ["", "s1", "p1"][rng.random_range(0..3)]
}

/// A well-formed message body of `kind`.
fn valid(rng: &mut StdRng) -> (u8, Vec<u8>) {
    let mut b = Vec::new();
    let kind = [b'Q', b'P', b'B', b'E', b'D', b'C', b'S', b'H'][rng.random_range(0..8)];
    match kind {
        b'Q' => cstr(&mut b, &sql(rng)),
        b'P' => {
            cstr(&mut b, name(rng));
            cstr(&mut b, &sql(rng));
            let n = rng.random_range(0..3u16);
            b.extend(n.to_be_bytes());
            for _ in 0..n {
                let oid: u32 = [0, 23, 25, 20, rng.random()][rng.random_range(0..5)];
                b.extend(oid.to_be_bytes());
            }
        }
        b'B' => {
            cstr(&mut b, name(rng));
            cstr(&mut b, name(rng));
            let nf = rng.random_range(0..2u16);
            b.extend(nf.to_be_bytes());
            for _ in 0..nf {
                b.extend(rng.random_range(0..2i16).to_be_bytes());
            }
            let nv = rng.random_range(0..3u16);
            b.extend(nv.to_be_bytes());
            for _ in 0..nv {
                if rng.random_bool(0.2) {
                    b.extend((-1i32).to_be_bytes());
                } else {
                    let v = if rng.random_bool(0.7) {
                        rng.random_range(-5..100i64).to_string().into_bytes()
                    } else {
                        (0..rng.random_range(0..9)).map(|_| rng.random()).collect()
                    };
                    b.extend((v.len() as i32).to_be_bytes());
                    b.extend(v);
                }
            }
            let nr = rng.random_range(0..2u16);
            b.extend(nr.to_be_bytes());
            for _ in 0..nr {
                b.extend(rng.random_range(0..2i16).to_be_bytes());
            }
        }
        b'E' => {
            cstr(&mut b, name(rng));
            b.extend(rng.random_range(0..3i32).to_be_bytes());
        }
        b'D' | b'C' => {
            b.push(if rng.random() { b'S' } else { b'P' });
            cstr(&mut b, name(rng));
        }
        _ => {}
    }
    (kind, b)
}

/// A message whose framing is right but whose body lies.
fn lying(rng: &mut StdRng) -> Vec<u8> {
    let (kind, mut b) = valid(rng);
    match rng.random_range(0..6) {
        // Flip bytes.
        0 if !b.is_empty() => {
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..b.len());
                b[i] = rng.random();
            }
        }
        // Cut the body short.
        1 if !b.is_empty() => b.truncate(rng.random_range(0..b.len())),
        // Trailing garbage.
        2 => b.extend((0..rng.random_range(1..16)).map(|_| rng.random::<u8>())),
        // Huge counts where counts go.
        3 => {
            let at = b.len().saturating_sub(2);
            b.splice(at.., [0xff, 0xff]);
        }
        // Text that is not UTF-8.
        4 => {
            b.splice(0..0, [0xff, 0xfe, 0]);
        }
        // A random body.
        _ => b = (0..rng.random_range(0..64)).map(|_| rng.random()).collect(),
    }
    frame(kind, &b)
}

/// A message that breaks the framing.
fn broken(rng: &mut StdRng) -> Vec<u8> {
    match rng.random_range(0..5) {
        0 => frame(rng.random_range(0x80..=0xffu8), b""),
        1 => vec![b'Q', 0, 0, 0, rng.random_range(0..4)],
        2 => {
            let mut m = vec![b'S'];
            m.extend(rng.random_range(10_005..i32::MAX).to_be_bytes());
            m
        }
        3 => {
            // Claims more than is sent: the server waits for the rest.
            let mut m = vec![b'Q'];
            m.extend(rng.random_range(100..5_000i32).to_be_bytes());
            m.extend(b"SELECT 1");
            m
        }
        _ => (0..rng.random_range(1..64)).map(|_| rng.random()).collect(),
    }
}

fn message(rng: &mut StdRng) -> (Shape, Vec<u8>) {
    let roll = rng.random_range(0..100);
    if roll < 60 {
        let (kind, body) = valid(rng);
        (Shape::Valid, frame(kind, &body))
    } else if roll < 93 {
        (Shape::Lying, lying(rng))
    } else {
        (Shape::Broken, broken(rng))
    }
}

/// A startup-phase packet, valid or not.
fn startup(rng: &mut StdRng) -> (bool, Vec<u8>) {
    match rng.random_range(0..8) {
        0 => (
            false,
            (0..rng.random_range(1..40)).map(|_| rng.random()).collect(),
        ),
        1 => (false, rng.random::<i32>().to_be_bytes().to_vec()),
        2 => {
            // An SSL request alone (the server answers one byte, `N`).
            let mut p = 8u32.to_be_bytes().to_vec();
            p.extend(80_877_103u32.to_be_bytes());
            (true, p)
        }
        3 => {
            let mut p = startup_packet();
            let i = rng.random_range(4..p.len());
            p[i] = rng.random();
            (false, p)
        }
        _ => (true, startup_packet()),
    }
}

/// One backend message (type, body); `None` at EOF; `Err` past the wait.
async fn recv(stream: &mut TcpStream) -> Result<Option<(u8, Vec<u8>)>, ()> {
    let read = async {
        let mut head = [0u8; 5];
        stream.read_exact(&mut head).await.ok()?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0u8; len.checked_sub(4)?.min(64 << 20)];
        stream.read_exact(&mut body).await.ok()?;
        Some((head[0], body))
    };
    tokio::time::timeout(ANSWER_WITHIN, read)
        .await
        .map_err(|_| ())
}

fn field(body: &[u8], code: u8) -> Option<String> {
    let mut rest = body;
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

fn hex(bytes: &[u8]) -> String {
    let shown: Vec<String> = bytes.iter().take(96).map(|b| format!("{b:02x}")).collect();
    format!("{} ({} bytes)", shown.join(""), bytes.len())
}

/// Runs one seed until `deadline`.
pub async fn run(addr: &str, seed: u64, deadline: Instant) -> Result<WireStats, Failure> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut stats = WireStats::default();
    let mut case = 0u64;
    while Instant::now() < deadline {
        let fail = |what: String, input: &[u8]| Failure {
            seed,
            case,
            what,
            input: hex(input),
        };
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| fail(format!("cannot connect: {e} (the node is down?)"), &[]))?;
        stats.connections += 1;
        let (session, mut sent) = startup(&mut rng);
        if sent.len() == 8 && sent[4..] == 80_877_103u32.to_be_bytes() {
            let _ = stream.write_all(&sent).await;
            let mut answer = [0u8; 1];
            match tokio::time::timeout(ANSWER_WITHIN, stream.read_exact(&mut answer)).await {
                Ok(Ok(_)) if answer[0] == b'N' => {}
                other => {
                    return Err(fail(
                        format!("an SSL request was answered with {other:?} {answer:?}"),
                        &sent,
                    ));
                }
            }
            sent = startup_packet();
        }
        let mut broke = !session;
        if session {
            let n = rng.random_range(1..10);
            for _ in 0..n {
                let (shape, m) = message(&mut rng);
                sent.extend(&m);
                stats.messages += 1;
                if shape == Shape::Broken {
                    broke = true;
                    break;
                }
            }
            if !broke {
                // Leave any extended-protocol error state, then probe.
                sent.extend(frame(b'S', b""));
                let mut q = Vec::new();
                cstr(&mut q, "ROLLBACK");
                sent.extend(frame(b'Q', &q));
                let mut q = Vec::new();
                cstr(&mut q, &format!("SELECT 'probe{case}'"));
                sent.extend(frame(b'Q', &q));
            }
        }
        let _ = stream.write_all(&sent).await;
        if broke {
            // Nothing more will come from us: the server must end the
            // connection, with a FATAL error when it saw one.
            let _ = stream.shutdown().await;
        }
        let probe = format!("probe{case}");
        let mut fatal = false;
        let mut probed = false;
        loop {
            match recv(&mut stream).await {
                Err(()) => {
                    return Err(fail(
                        format!("no answer within {}s", ANSWER_WITHIN.as_secs()),
                        &sent,
                    ));
                }
                Ok(None) => break,
                Ok(Some((b'E', body))) => {
                    stats.errors += 1;
                    if field(&body, b'S').as_deref() == Some("FATAL") {
                        fatal = true;
                    }
                }
                Ok(Some((b'D', body))) => {
                    if body.windows(probe.len()).any(|w| w == probe.as_bytes()) {
                        probed = true;
                    }
                }
                Ok(Some((b'Z', _))) if probed => {
                    stats.probes += 1;
                    break;
                }
                Ok(Some(_)) => {}
            }
        }
        if fatal {
            stats.fatal += 1;
        } else if !probed && !broke {
            return Err(fail(
                "the connection was closed without an ErrorResponse".into(),
                &sent,
            ));
        }
        case += 1;
    }
    Ok(stats)
}
