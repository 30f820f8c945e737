//! Hostile and large input (regressions): each case once crashed, hung or
//! exhausted a node, and must now be answered with an error (or a result)
//! while the node keeps serving.

use std::time::Duration;

use tokio_postgres::NoTls;

use crate::wire::{self, ANSWER_WITHIN, Raw, assert_serving, error_code, first_value, message};
use crate::{TestNode, expect_error, sqlstate, text_rows};

/// Runs `sql` (simple protocol) and returns its SQLSTATE, or "ok".
async fn outcome(client: &tokio_postgres::Client, sql: &str) -> String {
    match tokio::time::timeout(ANSWER_WITHIN, client.simple_query(sql)).await {
        Err(_) => panic!("no answer within 10 s to a {} byte statement", sql.len()),
        Ok(Ok(_)) => "ok".into(),
        Ok(Err(e)) => sqlstate(&e),
    }
}

fn nested(open: &str, inner: &str, close: &str, n: usize) -> String {
    format!("{}{inner}{}", open.repeat(n), close.repeat(n))
}

fn chain(term: &str, op: &str, n: usize) -> String {
    vec![term; n].join(op)
}

#[tokio::test]
async fn placeholders_beyond_the_limit_are_refused_before_allocating() {
    let node = TestNode::start();
    let c = node.client().await;
    // Once: "memory allocation of 2400000000000 bytes failed", then abort.
    for (sql, code) in [
        ("SELECT $100000000000::int", "42601"),
        ("SELECT $4294967296::int", "42601"),
        ("SELECT $65536::int", "54000"),
        ("SELECT $0::int", "42P02"),
        ("ALTER TABLE t SPLIT AT VALUES ($4294967296)", "42601"),
        ("ALTER TABLE t SPLIT AT VALUES ($70000)", "54000"),
    ] {
        let e = c.prepare(sql).await.expect_err(sql);
        assert_eq!(sqlstate(&e), code, "{sql}: {e}");
    }
    let stmt = c.prepare("SELECT $2::int + $1::int").await.unwrap();
    assert_eq!(stmt.params().len(), 2);
    let row = c.query_one(&stmt, &[&1i32, &2i32]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 3);
    assert_serving(&node.addr).await;
}

#[tokio::test]
async fn deep_and_long_statements_are_answered_quickly() {
    let node = TestNode::start();
    let c = node.client().await;
    // Nested calls parsed once each (40 levels took minutes: every
    // argument was parsed twice).
    let upper40 = format!("SELECT {}", nested("upper(", "'x'", ")", 40));
    assert_eq!(text_rows(&c, &upper40).await[0][0].as_deref(), Some("X"));
    let cases = [
        // Left-deep chains parse in a loop, into trees as deep as they are
        // long (1 000 terms overflowed a worker's stack).
        format!("SELECT {}", chain("1", " + ", 100_000)),
        format!("SELECT 1 WHERE {}", chain("1 = 1", " OR ", 20_000)),
        format!("SELECT {}", chain("'a'", " || ", 10_000)),
        chain("SELECT 1", " UNION ALL ", 5_000),
        format!("SELECT {}true", "NOT ".repeat(10_000)),
        format!("SELECT {}", nested("(", "1", ")", 10_000)),
        format!("SELECT {}", nested("(SELECT ", "1", ")", 500)),
        // Nested subquery expressions: DataFusion's planning time doubles
        // per level (20 levels ran for minutes, holding a planner thread).
        format!("SELECT {}", nested("(SELECT ", "1", ")", 20)),
        format!(
            "SELECT 1 WHERE 1 IN {}",
            nested("(SELECT 1 WHERE 1 IN ", "(SELECT 1)", ")", 20)
        ),
        format!("SELECT {}", nested("upper(", "'x'", ")", 2_000)),
        format!("SELECT {}", nested("position(", "'a' in 'a'", ")", 30)),
        format!("SELECT {}", nested("CAST(CASE (", "1", ") AS INT)", 30)),
        format!("SELECT 1 FROM {}", nested("(", "t", ")", 200)),
        format!("SELECT x{}", ".not-b".repeat(5_000)),
        format!("SELECT {}'1 day'", "INTERVAL ".repeat(10_000)),
        format!(
            "SELECT CAST(NULL AS {}INT{})",
            "ARRAY<".repeat(5_000),
            ">".repeat(5_000)
        ),
        format!(
            "WITH {} SELECT * FROM c199",
            (0..200)
                .map(|i| if i == 0 {
                    "c0 AS (SELECT 1 AS v)".to_string()
                } else {
                    format!("c{i} AS (SELECT v FROM c{})", i - 1)
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ];
    for (i, sql) in cases.iter().enumerate() {
        eprintln!("case {i}: {}", &sql[..sql.len().min(60)]);
        let started = std::time::Instant::now();
        let got = outcome(&c, sql).await;
        eprintln!("case {i}: {got} in {:?}", started.elapsed());
        assert!(
            ["ok", "54001", "42601", "42P01", "42703", "42883", "0A000"].contains(&got.as_str()),
            "unexpected {got} for {}",
            &sql[..sql.len().min(80)]
        );
    }
    assert_eq!(
        outcome(&c, &format!("SELECT {}", chain("1", " + ", 100_000))).await,
        "54001"
    );
    assert_eq!(text_rows(&c, "SELECT 1").await[0][0].as_deref(), Some("1"));
    assert_serving(&node.addr).await;
}

#[tokio::test]
async fn timeouts_and_cancel_requests_stop_planning() {
    let node = TestNode::start();
    let c = node.client().await;
    // Planning four 511-term chains takes seconds (DataFusion's passes are
    // quadratic in expression depth): long enough to be interrupted.
    let heavy = format!(
        "SELECT {}",
        (1..=4)
            .map(|i| chain(&i.to_string(), " + ", 511))
            .collect::<Vec<_>>()
            .join(", ")
    );
    c.batch_execute("SET statement_timeout = '300ms'")
        .await
        .unwrap();
    assert_eq!(outcome(&c, &heavy).await, "57014");
    c.batch_execute("SET statement_timeout = 0").await.unwrap();
    let cancel = c.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel_query(NoTls).await.unwrap();
    });
    let e = tokio::time::timeout(ANSWER_WITHIN, c.simple_query(&heavy))
        .await
        .expect("cancel answered")
        .expect_err("cancelled");
    assert_eq!(sqlstate(&e), "57014", "{e}");
    canceller.await.unwrap();
    assert_eq!(text_rows(&c, "SELECT 1").await[0][0].as_deref(), Some("1"));
    for v in ["9223372036854775807h", "2147483648", "99999999999999999999"] {
        expect_error(&c, &format!("SET statement_timeout = '{v}'"), "22023").await;
    }
    c.batch_execute("SET statement_timeout = '2147483647'")
        .await
        .unwrap();
}

#[tokio::test]
async fn malformed_messages_are_answered_and_the_session_continues() {
    let node = TestNode::start();
    let mut raw = Raw::session(&node.addr).await;
    // Parse claiming 65535 parameter types, none sent (pgwire read past
    // the message and panicked).
    let mut parse = b"\0SELECT 1\0".to_vec();
    parse.extend(0xffffu16.to_be_bytes());
    raw.send(&message(b'P', &parse)).await;
    raw.send(&wire::sync()).await;
    let answer = raw.until_ready().await.unwrap();
    assert_eq!(error_code(&answer).as_deref(), Some("08P01"), "{answer:?}");
    // Bind claiming 65535 values / a value past the message.
    let mut bind = b"\0\0".to_vec();
    bind.extend(0u16.to_be_bytes());
    bind.extend(0xffffu16.to_be_bytes());
    raw.send(&message(b'B', &bind)).await;
    let mut bind = b"\0\0\0\0\0\x01".to_vec();
    bind.extend(1_000_000i32.to_be_bytes());
    bind.extend(b"12\0\0");
    raw.send(&message(b'B', &bind)).await;
    raw.send(&wire::sync()).await;
    let answer = raw.until_ready().await.unwrap();
    assert_eq!(error_code(&answer).as_deref(), Some("08P01"), "{answer:?}");
    // The huge placeholder over the extended protocol.
    let mut parse = b"\0SELECT $100000000000::int\0".to_vec();
    parse.extend(0u16.to_be_bytes());
    raw.send(&message(b'P', &parse)).await;
    raw.send(&wire::sync()).await;
    let answer = raw.until_ready().await.unwrap();
    assert_eq!(error_code(&answer).as_deref(), Some("42601"), "{answer:?}");
    // Text that is not UTF-8.
    raw.send(&message(b'Q', b"SELECT '\xff\xfe'\0")).await;
    let answer = raw.until_ready().await.unwrap();
    assert_eq!(error_code(&answer).as_deref(), Some("22021"), "{answer:?}");
    // A Query over the message limit is skipped unread and refused.
    let huge = vec![b' '; 65 << 20];
    let mut q = vec![b'Q'];
    q.extend(((huge.len() + 5) as u32).to_be_bytes());
    q.extend(&huge);
    q.push(0);
    raw.send(&q).await;
    let answer = raw.until_ready().await.unwrap();
    assert_eq!(error_code(&answer).as_deref(), Some("54000"), "{answer:?}");
    // The session goes on.
    let answer = raw.simple("SELECT 41 + 1").await;
    assert_eq!(first_value(&answer).as_deref(), Some("42"), "{answer:?}");

    // Broken framing is FATAL 08P01 and closes the connection.
    for bad in [
        message(b'z', b""),
        vec![b'Q', 0, 0, 0, 3],
        vec![b'Q', 0xff, 0xff, 0xff, 0xff],
        vec![b'S', 0, 1, 0, 0],
    ] {
        let mut raw = Raw::session(&node.addr).await;
        raw.send(&bad).await;
        let answer = raw.until_closed().await;
        let fatal = answer
            .iter()
            .find(|m| m.kind == b'E')
            .expect("an ErrorResponse");
        assert_eq!(fatal.field(b'S').as_deref(), Some("FATAL"));
        assert_eq!(fatal.field(b'C').as_deref(), Some("08P01"));
    }
    // Startup packets that lie.
    for bad in [
        8u32.to_be_bytes()
            .iter()
            .chain(&196608u32.to_be_bytes())
            .copied()
            .collect::<Vec<_>>(),
        10_001u32.to_be_bytes().to_vec(),
        vec![0x7f, 0xff, 0xff, 0xff],
        [
            &12u32.to_be_bytes()[..],
            &(2u32 << 16).to_be_bytes(),
            b"a\0b\0",
        ]
        .concat(),
    ] {
        let mut raw = Raw::connect(&node.addr).await;
        raw.send(&bad).await;
        let answer = raw.until_closed().await;
        assert_eq!(error_code(&answer).as_deref(), Some("08P01"), "{answer:?}");
    }
    // A 1 GiB header, then the client leaves.
    let mut raw = Raw::session(&node.addr).await;
    raw.send(&[b'Q', 0x3f, 0xff, 0xff, 0xff]).await;
    drop(raw);
    assert_serving(&node.addr).await;
}

#[tokio::test]
async fn idle_handshakes_and_full_servers_do_not_lock_clients_out() {
    let node = TestNode::start_with(
        &[
            "--startup-timeout",
            "1s",
            "--max-pending-startups",
            "4",
            "--max-connections",
            "3",
        ],
        &[],
    );
    // Ten silent sockets: the oldest are evicted, a real client gets in.
    let mut silent = Vec::new();
    for _ in 0..10 {
        silent.push(Raw::connect(&node.addr).await);
    }
    assert_serving(&node.addr).await;
    // Every silent socket is closed by the startup timeout at the latest.
    for raw in &mut silent {
        assert!(raw.until_closed().await.is_empty());
    }
    // A full server answers FATAL 53300.
    let _a = node.client().await;
    let _b = node.client().await;
    let _c = node.client().await;
    let (host, port) = node.addr.rsplit_once(':').unwrap();
    let err = tokio_postgres::connect(&format!("host={host} port={port} user=postgres"), NoTls)
        .await
        .err()
        .expect("refused");
    assert_eq!(sqlstate(&err), "53300", "{err}");
    // A cancel request needs no session slot.
    _a.cancel_token().cancel_query(NoTls).await.unwrap();
    drop(_c);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_serving(&node.addr).await;
}

#[tokio::test]
async fn a_panicking_statement_answers_xx000_and_the_node_keeps_serving() {
    let node = TestNode::start_with(&[], &[("FAILPOINTS", "sql::statement=return(boom_marker)")]);
    let c = node.client().await;
    expect_error(&c, "SELECT 'boom_marker'", "XX000").await;
    assert_eq!(text_rows(&c, "SELECT 1").await[0][0].as_deref(), Some("1"));
    c.batch_execute("BEGIN").await.unwrap();
    expect_error(&c, "SELECT 'boom_marker'", "XX000").await;
    expect_error(&c, "SELECT 1", "25P02").await;
    c.batch_execute("ROLLBACK").await.unwrap();
    let stmt = c.prepare("SELECT 'boom_marker' || $1::text").await.unwrap();
    let e = c.query(&stmt, &[&"x"]).await.unwrap_err();
    assert_eq!(sqlstate(&e), "XX000");
    assert_serving(&node.addr).await;
}

#[tokio::test]
async fn buffered_results_of_multi_statement_strings_are_bounded() {
    let node = TestNode::start();
    let c = node.client().await;
    expect_error(
        &c,
        "SELECT repeat('x', 1000) FROM generate_series(1, 100000); SELECT 1",
        "54000",
    )
    .await;
    assert_eq!(text_rows(&c, "SELECT 1; SELECT 2").await.len(), 2);
}
