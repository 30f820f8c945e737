//! The SQL conformance files (`engine/sql/tests/slt`), run by the harness
//! against a HoloFusion node and a private PostgreSQL: every record must
//! hold on both, or be marked as a known difference in the file.

use crate::{harness, node_binary};

#[test]
fn conformance_files_pass_on_holofusion_and_postgres() {
    let node = node_binary();
    let out = harness(&[
        "conform",
        "--vs-postgres",
        "--node-binary",
        node.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "conformance failures:\n{stdout}"
    );
    assert!(
        stdout.contains("0 failure(s), each on HoloFusion and PostgreSQL"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok      postgres    engine/sql/tests/slt/errors.slt"),
        "{stdout}"
    );
}

#[test]
fn a_mismatching_record_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wrong.slt"),
        "query I\nSELECT 1 + 1\n----\n3\n",
    )
    .unwrap();
    let node = node_binary();
    let out = harness(&[
        "conform",
        dir.path().to_str().unwrap(),
        "--node-binary",
        node.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("FAILED  holofusion"), "{stdout}");
}
