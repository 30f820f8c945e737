#!/usr/bin/env bash
# Runs every check and test of the workspace: formatting, clippy, unit,
# integration and end-to-end tests, and the short SLO-gated perf smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
ci/install-deps.sh

export RUST_BACKTRACE="${RUST_BACKTRACE:-0}"
start=$(date +%s)
step() { echo "==> [$(( $(date +%s) - start ))s] $*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo build (binaries the multi-process tests start)"
cargo build --workspace --bins --tests --locked

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

step "done"
