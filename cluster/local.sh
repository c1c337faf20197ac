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
NATS_HOSTS="127.0.0.1:14222 127.0.0.1:14223 127.0.0.1:14224"
CLUSTER_NAME="${TANDEM_CLUSTER:-local}"
BIN="${TANDEM_BIN:-target/release/tandem}"
# Every node signs client ids with the same secret (a real deployment keeps its own secret).
ID_SECRET="${TANDEM_ID_SECRET:-local-cluster-id-secret-0123456789}"
# Every node seals its envelopes with the same cluster key, made once and kept in $STATE.
mkdir -p "$STATE"
cluster_key() {
  if [ -n "${TANDEM_CLUSTER_KEY:-}" ]; then
    return
  fi
  if [ ! -s "$STATE/cluster-key" ]; then
    (umask 077; head -c 32 /dev/urandom | base64 >"$STATE/cluster-key")
  fi
  TANDEM_CLUSTER_KEY="$(cat "$STATE/cluster-key")"
  export TANDEM_CLUSTER_KEY
}
cluster_key
# NATS lets in only the user `tandem` with this password (cluster/nats/*.conf read it from
# the environment); made once and kept in $STATE too.
if [ -z "${TANDEM_NATS_PASSWORD:-}" ]; then
  if [ ! -s "$STATE/nats-password" ]; then
    (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$STATE/nats-password")
  fi
  TANDEM_NATS_PASSWORD="$(cat "$STATE/nats-password")"
fi
export TANDEM_NATS_PASSWORD
# NATS speaks TLS only, to clients and between servers (routes verify each other's
# certificate). A CA of the cluster's own signs a certificate for each server; made once with
# openssl. cluster/nats/*.conf name these files, so they stay where the configs say.
TLS_DIR="target/local-cluster/tls"
tls_files() {
  if [ -s "$TLS_DIR/nats-3.pem" ]; then return; fi
  mkdir -p "$TLS_DIR"
  (
    umask 077
    cd "$TLS_DIR"
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    openssl req -x509 "${ec[@]}" -keyout ca-key.pem -out ca.pem -days 825 \
      -subj "/CN=tandem local cluster CA" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
    for i in 1 2 3; do
      openssl req "${ec[@]}" -keyout "nats-$i-key.pem" -out "nats-$i.csr" \
        -subj "/CN=nats-$i" 2>/dev/null
      openssl x509 -req -in "nats-$i.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
        -out "nats-$i.pem" -days 825 -extfile san.ext 2>/dev/null
    done
    rm -f ./*.csr
  )
}
tls_files
NATS_URLS=""
for host in $NATS_HOSTS; do
  NATS_URLS="${NATS_URLS:+$NATS_URLS,}tls://tandem:$TANDEM_NATS_PASSWORD@$host"
done
NATS_TLS=(--nats-tls-ca "$TLS_DIR/ca.pem")

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
  echo "nats: 3 servers routed as one cluster ($NATS_HOSTS; TLS, user tandem)"
}

start_node() { # index
  local i=$1 id="node-$1" port=$((8080 + $1))
  if alive "$STATE/$id.pid"; then echo "$id already running"; return; fi
  "$BIN" serve --listen "127.0.0.1:$port" --node-id "$id" --cluster "$CLUSTER_NAME" \
    --nats "$NATS_URLS" "${NATS_TLS[@]}" --id-secret "$ID_SECRET" --store-replicas 3 >"$STATE/$id.log" 2>&1 &
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
    "$BIN" cluster status --nats "$NATS_URLS" "${NATS_TLS[@]}" --cluster "$CLUSTER_NAME"
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
    "$BIN" cluster drain "$node" --nats "$NATS_URLS" "${NATS_TLS[@]}" --cluster "$CLUSTER_NAME"
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
