# Shared by deploy/demo.sh and deploy/demo/bench.sh: starts kvstored, a
# prefill, a decode, a proxy and a colocated (--role both) engine on free
# loopback ports with a temp dir, and stops them all on exit (trap).
# Needs: KVSTORED, ENGINE, say(); extra engine flags in ENGINE_ARGS (array).
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

wait_http() {  # url name
  for _ in $(seq 300); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "demo: $2 did not come up at $1; its log:" >&2
  tail -n 20 "$WORK/$2.log" >&2
  exit 1
}

STORE_PORT=$(free_port); STORE_METRICS=$(free_port)
PREFILL=$(free_port); DECODE=$(free_port); PROXY=$(free_port); BOTH=$(free_port)
STORE="127.0.0.1:$STORE_PORT"

say "   start kvstored, prefill, decode, proxy and a colocated engine (logs in $WORK)"
"$KVSTORED" --listen "$STORE" --metrics "127.0.0.1:$STORE_METRICS" --data-dir "$WORK/data" \
  --memory 256MiB --ttl 60s --no-mlock --log-level warn >"$WORK/kvstored.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$STORE_METRICS/metrics" kvstored
start_engine() {  # name args...
  local name=$1; shift
  "$ENGINE" --log-level warn "${ENGINE_ARGS[@]}" "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
}
start_engine prefill --role prefill --listen "127.0.0.1:$PREFILL" --store "$STORE"
start_engine decode --role decode --listen "127.0.0.1:$DECODE" --store "$STORE" --kv-timeout 10s
start_engine both --role both --listen "127.0.0.1:$BOTH"
start_engine proxy --role proxy --listen "127.0.0.1:$PROXY" \
  --prefill "http://127.0.0.1:$PREFILL" --decode "http://127.0.0.1:$DECODE"
for n in prefill:$PREFILL decode:$DECODE both:$BOTH proxy:$PROXY; do
  wait_http "http://127.0.0.1:${n#*:}/health" "${n%%:*}"
done
say "   kvstored $STORE | prefill :$PREFILL | decode :$DECODE | proxy :$PROXY | both :$BOTH"

