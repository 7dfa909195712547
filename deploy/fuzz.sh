#!/usr/bin/env bash
# Longer fuzzing: every libFuzzer target (tests/fuzz) for SECONDS each, in the
# sanitizer build directory (ASan + UBSan, clang-14), starting from the
# checked-in seeds plus what earlier runs found (kept in $ASAN_DIR/tests/fuzz/corpus).
# Crash inputs land in $ASAN_DIR/tests/fuzz/ as crash-*; reproduce one with
#   $ASAN_DIR/tests/fuzz/fuzz_<target> crash-<hash>
# Usage: deploy/fuzz.sh [SECONDS per target, default 3600] [target ...]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER=${1:-3600}
shift || true
ASAN_DIR=${KVSTORE_ASAN_BUILD_DIR:-build-asan}
./deploy/install-deps.sh
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
LAUNCHER=()
command -v ccache >/dev/null && LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
# The same configuration as deploy/test.sh's sanitize stage, so the two share a build.
CC=clang-14 CXX=clang++-14 cmake -S . -B "$ASAN_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DKVSTORE_WITH_CUDA=OFF -DKVSTORE_FUZZ=ON "${LAUNCHER[@]}" \
  -DCMAKE_C_FLAGS="-O1 $SAN" -DCMAKE_CXX_FLAGS="-O1 $SAN -fsanitize=fuzzer-no-link" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build "$ASAN_DIR" -j"$(nproc)" --target tests/fuzz/all
cd "$ASAN_DIR/tests/fuzz"
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  for f in fuzz_*; do [ -x "$f" ] && targets+=("${f#fuzz_}"); done
fi
rc=0
for t in "${targets[@]}"; do
  echo "fuzz.sh: $t for $SECONDS_PER s"
  mkdir -p "corpus/$t"
  ASAN_OPTIONS=halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "./fuzz_$t" -max_total_time="$SECONDS_PER" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "corpus/$t" "../../../tests/fuzz/corpus/$t" 2>"$t.log" || rc=1
  grep -E "stat::number_of_executed_units|stat::new_units_added|ERROR|SUMMARY" "$t.log" || true
done
exit $rc
