#!/usr/bin/env bash
# gpu-check: one command that verifies kvstore's CUDA paths on a machine with
# an NVIDIA GPU, in under 10 minutes:
#   1. configures a build for this GPU's architecture (nvidia-smi compute_cap)
#      and builds only what the checks need;
#   2. runs every test that skips where there is no GPU: the CUDA kernels
#      against their CPU twins, the CUDA model against the CPU model, the
#      device arena and the store's device tier -- and fails if any of them
#      still skips;
#   3. runs a short model benchmark: prefill and decode tokens/s of the CUDA
#      backend beside the CPU backend;
#   4. ends with one summary line: "gpu-check: PASS|FAIL ...".
# Without a GPU it says so and exits 2 (nothing was verified).
#
#   deploy/gpu-check.sh                # BUILD_DIR defaults to build-gpu/
# Environment: BUILD_DIR, JOBS (default nproc), BUDGET_SECONDS (default 600).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build-gpu}"
JOBS="${JOBS:-$(nproc)}"
BUDGET="${BUDGET_SECONDS:-600}"
START=$SECONDS
say() { printf 'gpu-check: %s\n' "$*"; }
left() { echo $(( BUDGET - (SECONDS - START) )); }
summary() {  # PASS|FAIL details
  say "$1 $2 ($(( SECONDS - START )) s)"
  [ "$1" = PASS ] && exit 0 || exit 1
}

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  say "no NVIDIA GPU on this machine (nvidia-smi $(command -v nvidia-smi >/dev/null && echo 'finds no device' || echo 'is not installed')); nothing was verified."
  say "run this script on a machine with an NVIDIA GPU and its driver to check the CUDA kernels, the CUDA model and the device tier."
  say "FAIL no GPU"
  exit 2
fi
GPU="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1)"
CC="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n1 | tr -d ' .')"
[ -n "$CC" ] || summary FAIL "cannot read the compute capability of $GPU"
command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ] ||
  summary FAIL "no nvcc: install the CUDA toolkit (expected at /usr/local/cuda)"
export PATH="$PATH:/usr/local/cuda/bin"
say "$GPU, sm_$CC; building in $BUILD_DIR with $JOBS jobs"

TARGETS=(kernels_cuda_ops_test engine_model_cuda_test engine_model_test kvstore_device_test
         kvstore_store_unit_test kvstore-model-bench)
LAUNCHER=()
command -v ccache >/dev/null 2>&1 && LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
timeout "$(left)" cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_ARCHITECTURES="$CC" "${LAUNCHER[@]}" >"$BUILD_DIR.configure.log" 2>&1 ||
  summary FAIL "configure failed for sm_$CC; see $BUILD_DIR.configure.log"
grep -q "KVSTORE_HAVE_CUDA:INTERNAL=1\|KVSTORE_HAVE_CUDA=1" "$BUILD_DIR/CMakeCache.txt" 2>/dev/null ||
  grep -q "CUDA .* found" "$BUILD_DIR.configure.log" ||
  summary FAIL "CMake did not enable CUDA; see $BUILD_DIR.configure.log"
timeout "$(left)" cmake --build "$BUILD_DIR" -j "$JOBS" --target "${TARGETS[@]}" \
  >"$BUILD_DIR.build.log" 2>&1 || summary FAIL "build failed or ran out of time; see $BUILD_DIR.build.log"
say "built in $(( SECONDS - START )) s"

# Every test that skips without a GPU (the tests of the no-GPU behaviour skip
# here instead, and a test needing an RDMA NIC as well may skip; neither counts).
TEST_LOG="$BUILD_DIR/gpu-tests.log"
: >"$TEST_LOG"
TEST_RC=0
run_tests() {  # binary [gtest filter]
  local bin="$BUILD_DIR/$1"
  timeout "$(left)" "$bin" --gtest_filter="${2:-*}" --gtest_brief=0 >>"$TEST_LOG" 2>&1 || TEST_RC=1
}
run_tests tests/kernels/kernels_cuda_ops_test
run_tests tests/engine/engine_model_cuda_test
run_tests tests/rdma/kvstore_device_test
run_tests tests/server/kvstore_store_unit_test 'StoreDeviceTier.*'
TOTAL=$(grep -Ec '^\[ +(OK|FAILED|SKIPPED) +\] [A-Za-z]' "$TEST_LOG")
PASSED=$(grep -Ec '^\[ +OK +\] ' "$TEST_LOG")
SKIPPED=$(grep -Ec 'no usable GPU|needs a GPU|no GPU' "$TEST_LOG")
say "tests: $PASSED of $TOTAL passed, $SKIPPED skipped for want of a GPU (log $TEST_LOG)"
grep -E '^\[ +(FAILED|SKIPPED) +\] [A-Za-z]' "$TEST_LOG" | sort -u | head -n 20

BENCH_LOG="$BUILD_DIR/gpu-bench.log"
timeout "$(left)" "$BUILD_DIR/tests/engine/kvstore-model-bench" --cuda --threads "$JOBS" \
  --prompt 512 --decode 64 --reps 2 >"$BENCH_LOG" 2>&1
BENCH_RC=$?
cat "$BENCH_LOG"
rate() {  # backend field -> tok/s
  grep "backend=$1 " "$BENCH_LOG" | tail -n1 |
    sed -n "s/.*$2 [0-9]* tok: *\([0-9.]*\) tok\/s.*/\1/p"
}
BENCH="prefill cuda $(rate cuda prefill) tok/s vs cpu $(rate cpu prefill); decode cuda $(rate cuda decode) tok/s vs cpu $(rate cpu decode)"

DETAILS="$GPU sm_$CC: tests $PASSED/$TOTAL passed, $SKIPPED skipped; $BENCH"
if [ "$TEST_RC" -ne 0 ] || [ "$TOTAL" -eq 0 ] || [ "$SKIPPED" -ne 0 ] || [ "$BENCH_RC" -ne 0 ]; then
  summary FAIL "$DETAILS"
fi
summary PASS "$DETAILS"
