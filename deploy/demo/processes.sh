# Shared by deploy/demo.sh and deploy/demo/bench.sh: starts kvstored, a
# prefill, a decode, a proxy and a colocated (--role both) engine on free
# loopback ports with a temp dir, and stops them all on exit (trap).
# Needs: KVSTORED, ENGINE, say(); extra engine flags in ENGINE_ARGS (array).
WORK="$(mktemp -d /tmp/kvstore-demo-XXXXXX)"
PIDS=()

cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "${KEEP_LOGS:-0}" = 1 ] || [ $rc -ne 0 ]; then
    echo "demo: logs kept in $WORK"
  else
    rm -rf "$WORK"
  fi
  exit $rc
}
trap cleanup EXIT INT TERM

# A loopback port nobody listens on (and that we have not handed out).
USED=" "
free_port() {
  local p
  while :; do
    p=$(( 20000 + RANDOM % 40000 ))
    case "$USED" in *" $p "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then USED="$USED$p "; echo "$p"; return; fi
  done
}

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

