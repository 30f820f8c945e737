#!/usr/bin/env bash
# Starts or stops a 3-node HoloFusion cluster on loopback.
#
#   ci/cluster.sh start [DIR]   build, start nodes 1-3 (node 1 bootstraps), wait until ready
#                               (HOLO_BIN=path: that binary, no build)
#   ci/cluster.sh stop  [DIR]   stop every node (SIGTERM, then SIGKILL after 10 s)
#
# Ports: PostgreSQL 127.0.0.1:5433-5435, internal RPC 127.0.0.1:26257-26259.
# DIR (default: ./.cluster) holds each node's data, log and pid file.
set -euo pipefail
cd "$(dirname "$0")/.."
cmd="${1:-}"
dir="${2:-.cluster}"
nodes=(1 2 3)
rpc() { echo "127.0.0.1:$((26256 + $1))"; }
pg() { echo "127.0.0.1:$((5432 + $1))"; }

case "$cmd" in
  start)
    ci/install-deps.sh
    if [[ -n "${HOLO_BIN:-}" ]]; then
      bin=$HOLO_BIN   # a binary built elsewhere
    else
      cargo build --release --bin holo-fusion
      bin=target/release/holo-fusion
    fi
    mkdir -p "$dir"
    for n in "${nodes[@]}"; do
      if [[ -f "$dir/n$n.pid" ]] && kill -0 "$(cat "$dir/n$n.pid")" 2>/dev/null; then
        echo "node $n already running (pid $(cat "$dir/n$n.pid"))"; continue
      fi
      seeds=$(for m in "${nodes[@]}"; do if [[ $m != "$n" ]]; then rpc "$m"; fi; done | paste -sd, -)
      extra=()
      [[ $n == 1 ]] && extra=(--bootstrap)
      nohup "$bin" start --node-id "$n" --listen "$(rpc "$n")" --pg-listen "$(pg "$n")" \
        --data-dir "$dir/n$n" --join "$seeds" "${extra[@]}" >"$dir/n$n.log" 2>&1 &
      echo $! >"$dir/n$n.pid"
    done
    for n in "${nodes[@]}"; do
      for _ in $(seq 1 120); do
        grep -q "holo-fusion ready" "$dir/n$n.log" 2>/dev/null && break
        kill -0 "$(cat "$dir/n$n.pid")" 2>/dev/null || { echo "node $n exited:"; tail -20 "$dir/n$n.log"; exit 1; }
        sleep 0.5
      done
      grep -q "holo-fusion ready" "$dir/n$n.log" || { echo "node $n not ready after 60 s"; exit 1; }
      echo "node $n ready: psql -h 127.0.0.1 -p $((5432 + n)) -U postgres"
    done
    ;;
  stop)
    for n in "${nodes[@]}"; do
      f="$dir/n$n.pid"
      [[ -f $f ]] || continue
      pid=$(cat "$f")
      if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
      fi
      rm -f "$f"
      echo "node $n stopped"
    done
    ;;
  *)
    echo "usage: ci/cluster.sh start|stop [DIR]" >&2
    exit 2
    ;;
esac
