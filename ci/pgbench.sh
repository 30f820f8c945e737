#!/usr/bin/env bash
# pgbench point select and point update, side by side in one run: a private
# PostgreSQL 15 (fsync on), HoloFusion --single-node, and a 3-node
# HoloFusion cluster on loopback (release build).
#
#   ci/pgbench.sh [CLIENTS] [SECONDS] [ROWS] [MODE]
#
# Defaults: 8 clients, 15 s per run, 10000 rows, -M simple. Table
# `kv (k BIGINT PRIMARY KEY, v TEXT, n BIGINT)`; scripts: `SELECT v, n FROM kv
# WHERE k = :k` and `UPDATE kv SET n = n + 1 WHERE k = :k`, k uniform in
# [1, ROWS]. Prints one line per target and script: tps and the ratio to
# PostgreSQL. HOLO_BIN=path runs that holo-fusion binary instead of building.
set -euo pipefail
cd "$(dirname "$0")/.."
clients="${1:-8}"
seconds="${2:-15}"
rows="${3:-10000}"
mode="${4:-simple}"
ci/install-deps.sh >/dev/null

if [[ -n "${HOLO_BIN:-}" ]]; then
  bin=$HOLO_BIN   # a binary built elsewhere (an older commit, say)
else
  cargo build --release --locked -p holo-node --bin holo-fusion
  bin=$PWD/target/release/holo-fusion
fi
work=$(mktemp -d /tmp/holo-pgbench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n "${pg_bin:-}" && -d "$work/pg" ]]; then
    runpg "$pg_bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

runpg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

cat >"$work/select.sql" <<EOF
\set k random(1, $rows)
SELECT v, n FROM kv WHERE k = :k;
EOF
cat >"$work/update.sql" <<EOF
\set k random(1, $rows)
UPDATE kv SET n = n + 1 WHERE k = :k;
EOF
chmod 755 "$work"; chmod 644 "$work"/*.sql

load() { # port
  psql -q -h 127.0.0.1 -p "$1" -U postgres -v ON_ERROR_STOP=1 <<EOF
CREATE TABLE kv (k BIGINT PRIMARY KEY, v TEXT, n BIGINT);
INSERT INTO kv SELECT value, 'value-' || CAST(value AS TEXT), 0 FROM generate_series(1, $rows) AS g(value);
EOF
}

declare -A base
bench() { # name port
  for script in select update; do
    if ! pgbench -n -h 127.0.0.1 -p "$2" -U postgres -c "$clients" -j 2 -T "$seconds" --max-tries 10 \
      -M "$mode" -f "$work/$script.sql" postgres >"$work/out" 2>&1; then
      echo "$1 $script: pgbench failed:" >&2; grep -i -m3 "error" "$work/out" >&2; tail -3 "$work/out" >&2; exit 1
    fi
    tps=$(awk '/^tps/ {print int($3)}' "$work/out")
    [[ $1 == postgres ]] && base[$script]=$tps
    ratio=$(awk -v a="$tps" -v b="${base[$script]}" 'BEGIN {printf "%.2f", a / b}')
    printf '%-22s %-6s %8d tps  %sx\n' "$1" "$script" "$tps" "$ratio"
  done
}

wait_ready() { # log pid
  for _ in $(seq 1 240); do
    grep -q "holo-fusion ready" "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { tail -20 "$1"; return 1; }
    sleep 0.25
  done
  echo "not ready: $1" >&2; return 1
}

# PostgreSQL 15.
mkdir -p "$work/pg"; [[ $(id -u) == 0 ]] && chown postgres "$work/pg"
runpg "$pg_bin/initdb" -D "$work/pg" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
runpg "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg/log" -w \
  -o "-p 5499 -c listen_addresses=127.0.0.1 -c unix_socket_directories=$work/pg -c shared_buffers=256MB -c fsync=on -c synchronous_commit=on" \
  start >/dev/null
load 5499
bench postgres 5499
runpg "$pg_bin/pg_ctl" -D "$work/pg" -m fast stop >/dev/null

# HoloFusion, one node.
"$bin" start --single-node --pg-listen 127.0.0.1:5498 --data-dir "$work/single" >"$work/single.log" 2>&1 &
pids+=($!)
wait_ready "$work/single.log" "${pids[-1]}"
load 5498
bench holofusion-1-node 5498
kill -TERM "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true

# HoloFusion, three nodes.
for n in 1 2 3; do
  seeds=""
  for m in 1 2 3; do
    if [[ $m != "$n" ]]; then seeds+="${seeds:+,}127.0.0.1:$((27256 + m))"; fi
  done
  extra=()
  if [[ $n == 1 ]]; then extra=(--bootstrap); fi
  "$bin" start --node-id "$n" --listen "127.0.0.1:$((27256 + n))" --pg-listen "127.0.0.1:$((5490 + n))" \
    --data-dir "$work/n$n" --join "$seeds" "${extra[@]}" >"$work/n$n.log" 2>&1 &
  pids+=($!)
done
for n in 1 2 3; do wait_ready "$work/n$n.log" "${pids[$n]}"; done
load 5491
bench holofusion-3-nodes 5491
