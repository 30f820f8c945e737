//! Harness end-to-end tests: the real harness binary against an embedded
//! HoloFusion, a private PostgreSQL and a containerized HoloFusion.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod browser;
mod conform;
mod fuzz;
mod runs;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `holo-fusion` binary built next to the harness (cargo builds it for
/// the holo-node tests of the same workspace run).
pub fn node_binary() -> PathBuf {
    let harness = PathBuf::from(env!("CARGO_BIN_EXE_harness"));
    let candidate = harness.parent().unwrap().join("holo-fusion");
    assert!(
        candidate.is_file(),
        "{} missing: build the workspace (cargo nextest run --workspace) so holo-fusion is built",
        candidate.display()
    );
    candidate
}

/// Runs the harness with `args`.
pub fn harness(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .current_dir(root())
        .args(args)
        .output()
        .expect("run harness");
    eprintln!(
        "harness {args:?} -> {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The report directory the harness printed.
pub fn report_dir(out: &Output) -> PathBuf {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("report: "))
        .expect("no report line");
    PathBuf::from(line)
}
