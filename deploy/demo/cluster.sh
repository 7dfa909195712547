#!/usr/bin/env bash
# kvstore as a cluster, on this machine: etcd + 3 kvstored nodes + 2 prefill +
# 2 decode engines + the proxy, all on loopback (free ports, a temp dir), and a
# colocated (--role both) engine as the reference. Every answer through the
# proxy must equal the colocated one, token for token; then one store node is
# killed (SIGKILL) and the prompts run again: its blocks miss, the engines
# recompute, and the answers must still be equal.
#
#   deploy/demo/cluster.sh [hash|local]
#
# hash  (default) engines use --store etcd://.../demo: every block lives at its
#       rendezvous home among the three nodes.
# local each engine's store is its own node (etcd://.../demo?placement=local&node=N);
#       a prefill answers the node it wrote to (kv_transfer_params.remote_store_node),
#       the proxy passes it on and the decode pulls from that node in one hop,
#       whichever node the decode itself sits on.
#
# Environment: BUILD_DIR (default build), KEEP_LOGS=1 keeps the temp dir.
# Exit status: 0 when every answer matched, before and after the node loss.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
PLACEMENT="${1:-hash}"
case "$PLACEMENT" in hash|local) ;; *) echo "usage: $0 [hash|local]" >&2; exit 2 ;; esac
say() { printf '\033[1mcluster demo:\033[0m %s\n' "$*"; }

say "1/5 dependencies and build"
"$ROOT/deploy/install-deps.sh"
cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" \
  --target kvstored kvstore-engine kvstore-loadgen kvstore-cli \
  | grep -E '^(FAILED|ninja: error)|error:' || true
KVSTORED="$BUILD_DIR/server/kvstored"
ENGINE="$BUILD_DIR/engine/kvstore-engine"
LOADGEN="$BUILD_DIR/engine/kvstore-loadgen"
CLI="$BUILD_DIR/client/cli/kvstore-cli"
for b in "$KVSTORED" "$ENGINE" "$LOADGEN" "$CLI"; do
  [ -x "$b" ] || { echo "cluster demo: build failed: $b missing" >&2; exit 1; }
done
command -v etcd >/dev/null || { echo "cluster demo: etcd missing (deploy/install-deps.sh)" >&2; exit 1; }

WORK_PREFIX=kvstore-cluster-demo
# shellcheck source=lib.sh
source "$ROOT/deploy/demo/lib.sh"
wait_for() {  # what command...
  local what=$1; shift
  for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "cluster demo: $what did not come up; logs in $WORK" >&2
  exit 1
}

say "2/5 etcd and three kvstored nodes (logs in $WORK)"
ETCD_PORT=$(free_port); ETCD_PEER=$(free_port)
etcd --name demo --data-dir "$WORK/etcd" --log-level warn \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
  --initial-cluster "demo=http://127.0.0.1:$ETCD_PEER" >"$WORK/etcd.log" 2>&1 &
PIDS+=($!)
wait_for etcd curl -fsS "http://127.0.0.1:$ETCD_PORT/health"
CLUSTER="etcd://127.0.0.1:$ETCD_PORT/demo"
NODES=(); NODE_PIDS=()
for i in 0 1 2; do
  port=$(free_port)
  "$KVSTORED" --listen "127.0.0.1:$port" --metrics '' --data-dir "$WORK/node$i" --memory 256MiB \
    --ttl 60s --no-mlock --log-level warn --cluster "$CLUSTER" --cluster-lease-ttl 3s \
    >"$WORK/node$i.log" 2>&1 &
  PIDS+=($!); NODE_PIDS+=($!); NODES+=("127.0.0.1:$port")
done
wait_for "3 members" bash -c "[ \$('$CLI' --cluster '$CLUSTER' members --json | grep -c '\"state\": \"up\"') = 3 ]"
"$CLI" --cluster "$CLUSTER" members

say "3/5 2 prefill + 2 decode ($PLACEMENT placement), proxy, colocated reference"
store_for() {  # node index -> an engine's --store
  if [ "$PLACEMENT" = local ]; then echo "$CLUSTER?placement=local&node=${NODES[$1]}"; else echo "$CLUSTER"; fi
}
PF=(); DC=()
start_engine() {  # name args...
  local name=$1; shift
  "$ENGINE" --log-level warn "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
}
for i in 0 1; do
  p=$(free_port); d=$(free_port); PF+=("$p"); DC+=("$d")
  start_engine "prefill$i" --role prefill --listen "127.0.0.1:$p" --store "$(store_for "$i")"
  # decode i sits on the other node: under local placement every handoff crosses nodes.
  start_engine "decode$i" --role decode --listen "127.0.0.1:$d" --store "$(store_for $((1 - i)))" --kv-timeout 5s
done
BOTH=$(free_port); PROXY=$(free_port)
start_engine both --role both --listen "127.0.0.1:$BOTH"
start_engine proxy --role proxy --listen "127.0.0.1:$PROXY" \
  --prefill "http://127.0.0.1:${PF[0]},http://127.0.0.1:${PF[1]}" \
  --decode "http://127.0.0.1:${DC[0]},http://127.0.0.1:${DC[1]}"
for p in "${PF[@]}" "${DC[@]}" "$BOTH" "$PROXY"; do
  wait_for "engine on :$p" curl -fsS "http://127.0.0.1:$p/health"
done

metric() {  # url name [label-substring]
  curl -fsS "$1/metrics" | awk -v n="$2" -v l="${3:-}" '
    $1 ~ "^"n"({|$)" && index($1, l) { s += $2 } END { printf "%.0f", s }'
}
check() {  # label
  local rc=0
  "$LOADGEN" --mode check --colocated "http://127.0.0.1:$BOTH" \
    --disaggregated "http://127.0.0.1:$PROXY" >"$WORK/check-$1.txt" 2>&1 || rc=$?
  grep -E '^check' "$WORK/check-$1.txt" || tail -5 "$WORK/check-$1.txt"
  grep MISMATCH "$WORK/check-$1.txt" || true
  return $rc
}
misses() {
  local m=0
  for d in "${DC[@]}"; do m=$(( m + $(metric "http://127.0.0.1:$d" kvstore_engine_kv_misses_total) )); done
  echo "$m"
}

say "4/5 prompts through the proxy vs the colocated engine"
rc=0
check all-nodes || rc=1
misses_before=$(misses)
"$CLI" --cluster "$CLUSTER" stats

say "5/5 SIGKILL store node ${NODES[0]} (prefill0's own node under local); the same prompts again"
kill -KILL "${NODE_PIDS[0]}"
wait "${NODE_PIDS[0]}" 2>/dev/null || true
check one-node-lost || rc=1
misses_after=$(misses)
# After the lease (3 s) the node is gone from the membership.
sleep 4
"$CLI" --cluster "$CLUSTER" members

echo
echo "==================== kvstore cluster demo ($PLACEMENT placement) ===================="
echo "3 store nodes, 2 prefill, 2 decode, proxy; etcd at 127.0.0.1:$ETCD_PORT"
echo "decode KV misses: $misses_before with all nodes, $(( misses_after - misses_before )) after losing one (recomputed)"
if [ $rc -eq 0 ]; then
  echo "RESULT: PASS -- every answer equals the colocated engine's, before and after the node loss"
else
  echo "RESULT: FAIL -- see MISMATCH lines above and the logs in $WORK"
fi
exit $rc
