#!/usr/bin/env bash
# CREATE INDEX on a large table of a 3-node release cluster under writers,
# then the index compared with full scans (ci/index_build_soak.py):
#
#   ci/index_build_soak.sh [ROWS] [--kill]
#
# ROWS defaults to 1 000 000; --kill kills node 1 (the building node) with
# SIGKILL once a third of the rows are backfilled. The cluster lives in a
# temporary directory on ports 5433-5435 and 26257-26259, stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${1:-1000000}"
kill_flag="${2:-}"
dir=$(mktemp -d /tmp/holo-soak.XXXXXX)
trap 'ci/cluster.sh stop "$dir" >/dev/null; rm -rf "$dir"' EXIT
ci/cluster.sh start "$dir"
target/client-venv/bin/python ci/index_build_soak.py --rows "$rows" --pid-file "$dir/n1.pid" $kill_flag
