#!/usr/bin/env bash
# The main job: the harness's default workload (read_heavy) on an embedded
# HoloFusion cluster started from this workspace, then the same workload on a
# private PostgreSQL, with the comparison in the report (reports/).
# Extra arguments go to `harness run` (e.g. --duration 60s --scale 10).
set -euo pipefail
cd "$(dirname "$0")/.."
ci/install-deps.sh

cargo build --release --locked -p holo-node --bin holo-fusion
exec cargo run --release --locked -p harness -- run workloads/read_heavy.yaml \
  --vs-postgres --slo slo/read_heavy.yaml --node-binary target/release/holo-fusion "$@"
