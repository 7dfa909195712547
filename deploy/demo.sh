#!/usr/bin/env bash
# The main job: disaggregated LLM serving through kvstore, on this machine.
#
# Installs what is missing (deploy/install-deps.sh), builds kvstored,
# kvstore-engine and kvstore-loadgen, then starts on loopback (free ports,
# a temp data dir): kvstored, one prefill engine, one decode engine, the
# proxy in front of them, and a colocated (--role both) engine as the
# reference. It sends a prompt set (shared prefixes; lengths below, at and
# above block multiples) through the proxy, checks every answer equals the
# colocated one token for token, prints a short report, and stops
# everything. Exit status: 0 when every answer matched.
#
# Environment: BUILD_DIR (default build), KEEP_LOGS=1 keeps the temp dir.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
cd "$ROOT"

say() { printf '\033[1mdemo:\033[0m %s\n' "$*"; }

say "1/4 dependencies"
"$ROOT/deploy/install-deps.sh"

say "2/4 build (kvstored, kvstore-engine, kvstore-loadgen) in $BUILD_DIR"
t0=$(date +%s)
cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" --target kvstored kvstore-engine kvstore-loadgen \
  | grep -E '^(FAILED|ninja: error)|error:' || true
for t in server/kvstored engine/kvstore-engine engine/kvstore-loadgen; do
  [ -x "$BUILD_DIR/$t" ] || { echo "demo: build failed: $BUILD_DIR/$t missing" >&2; exit 1; }
done
say "   built in $(( $(date +%s) - t0 )) s"

KVSTORED="$BUILD_DIR/server/kvstored"
ENGINE="$BUILD_DIR/engine/kvstore-engine"
LOADGEN="$BUILD_DIR/engine/kvstore-loadgen"
say "3/4 start kvstored, prefill, decode, proxy and a colocated engine"
ENGINE_ARGS=()
# shellcheck source=demo/processes.sh
source "$ROOT/deploy/demo/processes.sh"

say "4/4 prompts through the proxy vs the colocated engine"
rc=0
"$LOADGEN" --mode check --colocated "http://127.0.0.1:$BOTH" \
  --disaggregated "http://127.0.0.1:$PROXY" --store "$STORE" >"$WORK/check.txt" || rc=$?
grep MISMATCH "$WORK/check.txt" || true

metric() {  # url name [label-substring]
  curl -fsS "$1/metrics" | awk -v n="$2" -v l="${3:-}" '
    $1 ~ "^"n"({|$)" && index($1, l) { s += $2 } END { printf "%.0f", s }'
}
pushed=$(metric "http://127.0.0.1:$PREFILL" kvstore_engine_kv_bytes_pushed_total)
pulled=$(metric "http://127.0.0.1:$DECODE" kvstore_engine_kv_bytes_pulled_total)
loaded=$(metric "http://127.0.0.1:$DECODE" kvstore_engine_kv_blocks_total 'event="loaded"')
misses=$(metric "http://127.0.0.1:$DECODE" kvstore_engine_kv_misses_total)
reused=$(metric "http://127.0.0.1:$PREFILL" kvstore_engine_kv_blocks_total 'event="reused"')
local_hits=$(metric "http://127.0.0.1:$PREFILL" kvstore_engine_kv_blocks_total 'event="local"')
drops=$(metric "http://127.0.0.1:$STORE_METRICS" kvstore_request_duration_seconds_count 'op="drop_select"')
entries=$(metric "http://127.0.0.1:$STORE_METRICS" kvstore_entries)

echo
echo "==================== kvstore disaggregated serving demo ===================="
grep -E '^(check|colocated|disaggregated|store)' "$WORK/check.txt" | sed 's/qps  0.00  //'
iec() { numfmt --to=iec-i --suffix=B "$1" 2>/dev/null || echo "$1 bytes"; }
printf 'KV moved: prefill pushed %s, decode pulled %s (%s blocks), %s misses\n' \
  "$(iec "$pushed")" "$(iec "$pulled")" "$loaded" "$misses"
printf 'prefix reuse on prefill: %s blocks retained in the store, %s from its local cache\n' \
  "$reused" "$local_hits"
by_local=$(metric "http://127.0.0.1:$STORE_METRICS" kvstore_transport_connections_total 'transport="local"')
by_tcp=$(metric "http://127.0.0.1:$STORE_METRICS" kvstore_transport_connections_total 'transport="tcp"')
printf 'kvstored: %s drop_selects served, %s entries left; connections by transport: local %s, tcp %s\n' \
  "$drops" "$entries" "$by_local" "$by_tcp"
if [ $rc -eq 0 ] && [ "$entries" = 0 ]; then
  echo "RESULT: PASS -- every disaggregated answer equals the colocated answer"
else
  [ $rc -ne 0 ] || rc=1
  echo "RESULT: FAIL -- see MISMATCH lines above and the logs in $WORK"
fi
exit $rc
