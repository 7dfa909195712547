#!/usr/bin/env bash
# The test command: installs what it needs (Debian packages), builds everything
# and runs the whole suite (unit, integration against the real kvstored, CLI,
# kernels, engines, end to end, the bounded chaos suite), then builds the daemon,
# the client library and their tests again with AddressSanitizer and
# UndefinedBehaviorSanitizer (clang-14, build-asan/) and runs those suites and
# every fuzz target (a bounded time each) under them.
#
# Usage: deploy/test.sh [extra ctest args for the main suite]
# Environment:
#   KVSTORE_BUILD_DIR        main build directory (default build)
#   KVSTORE_ASAN_BUILD_DIR   sanitizer build directory (default build-asan)
#   KVSTORE_TEST_STAGES      stages to run, any of "main sanitize" (default both)
#   KVSTORE_FUZZ_SECONDS     seconds per fuzz target in the sanitize stage (default 20)
# Longer fuzzing: deploy/fuzz.sh SECONDS. Longer chaos: deploy/chaos.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
STAGES=${KVSTORE_TEST_STAGES:-main sanitize}
JOBS=$(nproc)
LAUNCHER=()
command -v ccache >/dev/null && LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
start=$(date +%s)
stage_time() { echo "test.sh: $1 took $(($(date +%s) - $2)) s"; }

if [[ " $STAGES " == *" main "* ]]; then
  t=$(date +%s)
  BUILD_DIR=${KVSTORE_BUILD_DIR:-build}
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${LAUNCHER[@]}" >/dev/null
  cmake --build "$BUILD_DIR" -j"$JOBS"
  (cd "$BUILD_DIR" && ctest --output-on-failure -j"$JOBS" --timeout 600 "$@")
  stage_time "main build and suite" "$t"
fi

if [[ " $STAGES " == *" sanitize "* ]]; then
  t=$(date +%s)
  ASAN_DIR=${KVSTORE_ASAN_BUILD_DIR:-build-asan}
  # Debug keeps assert() on; -O1 keeps the sanitized suites fast enough. Every
  # library is also built with libFuzzer's coverage hooks (fuzzer-no-link) so
  # the fuzz targets in the same tree see coverage of the code they drive.
  SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$ASAN_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DKVSTORE_WITH_CUDA=OFF -DKVSTORE_FUZZ=ON \
    -DKVSTORE_FUZZ_SECONDS="${KVSTORE_FUZZ_SECONDS:-20}" "${LAUNCHER[@]}" \
    -DCMAKE_C_FLAGS="-O1 $SAN" -DCMAKE_CXX_FLAGS="-O1 $SAN -fsanitize=fuzzer-no-link" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
    -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
  # The daemon, the CLI, the client and server-side suites, the fuzz targets;
  # not the kernels, the model or the engines (their suites run in the main stage).
  SAN_DIRS=(tests/support tests/client tests/server tests/transport tests/tiers tests/rdma tests/fuzz)
  cmake --build "$ASAN_DIR" -j"$JOBS" --target kvstored kvstore-cli \
    $(for d in "${SAN_DIRS[@]}"; do echo "$d/all"; done)
  # A report in a daemon the tests spawn goes to its log, not to the test's
  # output: every report is also written under $REPORTS, and any file there
  # fails the stage.
  REPORTS=$(mktemp -d /tmp/kvstore-sanitizer-XXXXXX)
  export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:detect_leaks=1:strict_string_checks=1:check_initialization_order=1:log_path=$REPORTS/asan"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$REPORTS/ubsan"
  rc=0
  for d in "${SAN_DIRS[@]}"; do
    [ -d "$ASAN_DIR/$d" ] || continue
    (cd "$ASAN_DIR/$d" && ctest --output-on-failure -j"$JOBS" --timeout 900) || rc=1
  done
  if compgen -G "$REPORTS/*" >/dev/null; then
    echo "test.sh: sanitizer reports (from the suites or the daemons they started):"
    for f in "$REPORTS"/*; do echo "== $f"; head -60 "$f"; done
    rc=1
  fi
  # Fuzzing statistics, for the record: executions per target.
  for log in "$ASAN_DIR"/Testing/Temporary/LastTest.log "$ASAN_DIR"/tests/fuzz/Testing/Temporary/LastTest.log; do
    [ -f "$log" ] && grep -E "^[0-9]+/[0-9]+ Test: fuzz\.|stat::number_of_executed_units" "$log" || true
  done
  stage_time "sanitizer build, suites and fuzzing" "$t"
  [ "$rc" -eq 0 ] || { echo "test.sh: sanitizer stage FAILED"; exit 1; }
fi
stage_time "the test command" "$start"
