//! The fuzzers in CI: each for a bounded time on fixed seeds (among them
//! the ones that once found bugs) plus one random seed printed in the log.

use crate::{harness, node_binary};

fn fuzz(args: &[&str]) -> String {
    let node = node_binary();
    let mut all = args.to_vec();
    all.extend_from_slice(&["--random-seed", "--node-binary", node.to_str().unwrap()]);
    let out = harness(&all);
    assert_eq!(out.status.code(), Some(0), "the fuzzer found a failure");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn protocol_fuzzer_finds_no_crash_hang_or_silent_close() {
    let out = fuzz(&[
        "fuzz",
        "wire",
        "--duration",
        "30s",
        "--seed",
        "1",
        "--seed",
        "7",
        "--seed",
        "401",
    ]);
    assert!(out.contains("wire seed 401:"), "{out}");
}

#[test]
fn sql_fuzzer_finds_no_crash_or_hang_and_compares_with_postgres() {
    let out = fuzz(&[
        "fuzz",
        "sql",
        "--duration",
        "30s",
        "--seed",
        "1",
        "--seed",
        "2",
        "--vs-postgres",
    ]);
    assert!(out.contains("sql seed 2:"), "{out}");
}

#[test]
fn a_hostile_client_leaves_a_3_node_cluster_serving() {
    let out = fuzz(&[
        "fuzz",
        "wire",
        "--nodes",
        "3",
        "--duration",
        "15s",
        "--seed",
        "3",
    ]);
    assert!(out.contains("no errors"), "{out}");
    let out = fuzz(&[
        "fuzz",
        "sql",
        "--nodes",
        "3",
        "--duration",
        "15s",
        "--seed",
        "4",
    ]);
    assert!(out.contains("no errors"), "{out}");
}
