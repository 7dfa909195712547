# Shared by the demo scripts: a temp dir ($WORK; removed on success unless
# KEEP_LOGS=1), child processes ($PIDS: SIGTERM, then SIGKILL, on exit) and
# free loopback ports. WORK_PREFIX names the temp dir (default kvstore-demo).
WORK="$(mktemp -d "/tmp/${WORK_PREFIX:-kvstore-demo}-XXXXXX")"
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
