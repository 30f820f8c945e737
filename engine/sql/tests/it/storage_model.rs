//! Checks the worked example of `docs/storage-model.md` byte for byte: the
//! document's key/value listing must be exactly what a CREATE TABLE and two
//! INSERTs write, secondary index entries included.

use holo_kv::{Transaction, TxnOptions};

use crate::fixture;

const DOC: &str = include_str!("../../../../docs/storage-model.md");
const BEGIN: &str = "<!-- worked-example:begin -->";
const END: &str = "<!-- worked-example:end -->";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Renders a value: JSON descriptors as text, everything else as hex.
fn render_value(v: &[u8]) -> String {
    if v.first() == Some(&b'{') {
        format!("json {}", String::from_utf8_lossy(v))
    } else {
        format!("hex {}", hex(v))
    }
}

/// Key prefix of schema leases.
const LEASE_PREFIX: &[u8] = b"\x02schema_lease/";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worked_example_matches_the_document() {
    let f = fixture().await;
    let session = holo_sql::Session::new(&f.engine);
    session
        .query(
            "CREATE TABLE users (id BIGINT PRIMARY KEY, name TEXT NOT NULL UNIQUE, score INT);
             INSERT INTO users VALUES (1, 'ada', 42);
             INSERT INTO users VALUES (2, 'bob', NULL);",
        )
        .await
        .unwrap();
    let txn = Transaction::begin(f.kv.clone(), TxnOptions::default())
        .await
        .unwrap();
    let (pairs, next) = txn.scan_chunk(&[0x02], &[0x11], 1000).await.unwrap();
    assert!(next.is_none());
    let actual: Vec<String> = pairs
        .iter()
        .map(|(k, v)| match k.strip_prefix(LEASE_PREFIX) {
            // A node's schema lease: a random instance id, the version it
            // last published and a clock reading, shown as placeholders.
            Some(_) if v.len() == 24 => format!(
                "{}<instance u64> => hex {}<version u64><written ms u64>",
                hex(LEASE_PREFIX),
                hex(&v[..8])
            ),
            _ => format!("{} => {}", hex(k), render_value(v)),
        })
        .collect();
    let block = DOC
        .split(BEGIN)
        .nth(1)
        .and_then(|rest| rest.split(END).next())
        .expect("docs/storage-model.md lacks the worked-example block");
    let documented: Vec<String> = block
        .lines()
        .map(str::trim)
        .filter(|l| l.contains(" => "))
        .map(str::to_string)
        .collect();
    assert_eq!(
        documented,
        actual,
        "docs/storage-model.md is out of date; the code writes:\n{}",
        actual.join("\n")
    );
}
