#!/usr/bin/env bash
# Colocated vs disaggregated latency under load, like vLLM's
# disagg_benchmarks: starts the same processes as deploy/demo.sh and runs
# kvstore-loadgen --mode bench against the colocated engine and the proxy.
#
#   deploy/demo/bench.sh                      # prefill-heavy Poisson load
#   deploy/demo/bench.sh --workload trace --trace ../shared/traces/conversation_trace.jsonl
#
# Arguments go to kvstore-loadgen; without any, a prefill-heavy Poisson load
# (512-token prompts, 32 output tokens, 1..3 QPS, 30 requests per rate).
# Environment: BUILD_DIR (default build; built targets expected),
# PLOT (default itl_over_qps.png in the current directory).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
PLOT="${PLOT:-$PWD/itl_over_qps.png}"
say() { printf '\033[1mbench:\033[0m %s\n' "$*"; }
KVSTORED="$BUILD_DIR/server/kvstored"
ENGINE="$BUILD_DIR/engine/kvstore-engine"
LOADGEN="$BUILD_DIR/engine/kvstore-loadgen"
for b in "$KVSTORED" "$ENGINE" "$LOADGEN"; do
  [ -x "$b" ] || { echo "bench: $b missing; run deploy/demo.sh (or build the targets) first" >&2; exit 1; }
done
ENGINE_ARGS=()
# shellcheck source=processes.sh
source "$ROOT/deploy/demo/processes.sh"
say "running the load (this takes a few minutes)"
[ $# -gt 0 ] || set -- --workload poisson --qps 1,2,3 --num-requests 30 --input-len 512 \
  --output-len 32
"$LOADGEN" --mode bench --colocated "http://127.0.0.1:$BOTH" \
  --disaggregated "http://127.0.0.1:$PROXY" --plot "$PLOT" "$@"
