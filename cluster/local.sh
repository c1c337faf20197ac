#!/usr/bin/env bash
# A local tandem cluster on loopback: three routed nats-server processes and N tandem nodes.
#
#   cluster/local.sh up [N]        start NATS (3 servers) and N nodes (default 3)
#   cluster/local.sh status        nodes, shards, users online/waiting, matches/s
#   cluster/local.sh kill NODE     SIGKILL a node (e.g. node-2), as a crash would
#   cluster/local.sh drain NODE    drain a node gracefully (tandem cluster drain)
#   cluster/local.sh add           start one more node
#   cluster/local.sh down          stop everything
#
# Nodes listen on 127.0.0.1:8081, :8082, ... (node-1, node-2, ...); NATS on 14222-14224.
# State (pids, logs) lives in $TANDEM_CLUSTER_DIR (default: target/local-cluster).
set -euo pipefail
cd "$(dirname "$0")/.."

STATE="${TANDEM_CLUSTER_DIR:-target/local-cluster}"
NATS_URLS="nats://127.0.0.1:14222,nats://127.0.0.1:14223,nats://127.0.0.1:14224"
CLUSTER_NAME="${TANDEM_CLUSTER:-local}"
BIN="${TANDEM_BIN:-target/release/tandem}"
mkdir -p "$STATE"

build() {
  if [ ! -x "$BIN" ]; then
    echo "building $BIN (release)"
    cargo build --release --locked
  fi
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_http() { # url
  for _ in $(seq 1 100); do
    if curl -fsS "$1" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "no answer from $1" >&2
  return 1
}

start_nats() {
  for i in 1 2 3; do
    if alive "$STATE/nats-$i.pid"; then continue; fi
    nats-server -c cluster/nats/nats-$i.conf >"$STATE/nats-$i.log" 2>&1 &
    echo $! >"$STATE/nats-$i.pid"
  done
  for i in 1 2 3; do wait_http "http://127.0.0.1:1822$((i + 1))/healthz"; done
  echo "nats: 3 servers routed as one cluster ($NATS_URLS)"
}

start_node() { # index
  local i=$1 id="node-$1" port=$((8080 + $1))
  if alive "$STATE/$id.pid"; then echo "$id already running"; return; fi
  "$BIN" serve --listen "127.0.0.1:$port" --node-id "$id" --cluster "$CLUSTER_NAME" \
    --nats "$NATS_URLS" >"$STATE/$id.log" 2>&1 &
  echo $! >"$STATE/$id.pid"
  wait_http "http://127.0.0.1:$port/healthz"
  echo "$id: http://127.0.0.1:$port (log $STATE/$id.log)"
}

next_index() {
  local i=1
  while [ -f "$STATE/node-$i.pid" ]; do i=$((i + 1)); done
  echo $i
}

case "${1:-}" in
  up)
    build
    start_nats
    n="${2:-3}"
    for i in $(seq 1 "$n"); do start_node "$i"; done
    ;;
  add)
    build
    start_node "$(next_index)"
    ;;
  status)
    "$BIN" cluster status --nats "$NATS_URLS" --cluster "$CLUSTER_NAME"
    ;;
  kill)
    node="${2:?usage: local.sh kill NODE}"
    if alive "$STATE/$node.pid"; then
      kill -9 "$(cat "$STATE/$node.pid")"
      echo "$node killed (SIGKILL)"
    else
      echo "$node is not running" >&2
      exit 1
    fi
    ;;
  drain)
    node="${2:?usage: local.sh drain NODE}"
    "$BIN" cluster drain "$node" --nats "$NATS_URLS" --cluster "$CLUSTER_NAME"
    ;;
  down)
    for pid in "$STATE"/*.pid; do
      [ -e "$pid" ] || continue
      kill "$(cat "$pid")" 2>/dev/null || true
      rm -f "$pid"
    done
    echo "stopped"
    ;;
  *)
    sed -n '2,12p' "$0"
    exit 2
    ;;
esac
