#!/usr/bin/env bash
# Tail latency of disaggregated serving against colocated serving, with and
# without chunked prefill, like vLLM's disagg_benchmarks: starts the same
# processes as deploy/demo.sh plus colocated engines with --max-prefill-chunk,
# and runs kvstore-loadgen --mode bench against all of them, interleaved
# (same requests, same rate, setups in rotating order, --rounds repeats).
#
#   deploy/demo/bench.sh                      # prefill-heavy Poisson load
#   deploy/demo/bench.sh --workload trace --trace ../shared/traces/conversation_trace.jsonl
#
# Arguments go to kvstore-loadgen; without any, a prefill-heavy Poisson load
# (512-token prompts, 32 output tokens, 1..3 QPS, 20 requests per rate, 3 rounds).
# Environment: BUILD_DIR (default build; built targets expected),
# PLOT (default itl_over_qps.png in the current directory),
# CHUNKS (default "32 64 128": --max-prefill-chunk of the chunked engines).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
PLOT="${PLOT:-$PWD/itl_over_qps.png}"
CHUNKS="${CHUNKS:-32 64 128}"
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
CHUNKED=()
for n in $CHUNKS; do
  port=$(free_port)
  start_engine "chunk$n" --role both --listen "127.0.0.1:$port" --max-prefill-chunk "$n"
  wait_http "http://127.0.0.1:$port/health" "chunk$n"
  CHUNKED+=(--chunked "chunk$n=http://127.0.0.1:$port")
done
say "   colocated engines with --max-prefill-chunk: $CHUNKS"
say "running the load (this takes a few minutes)"
[ $# -gt 0 ] || set -- --workload poisson --qps 1,2,3 --num-requests 20 --input-len 512 \
  --output-len 32 --rounds 3
"$LOADGEN" --mode bench --colocated "http://127.0.0.1:$BOTH" \
  --disaggregated "http://127.0.0.1:$PROXY" "${CHUNKED[@]}" --plot "$PLOT" "$@"
