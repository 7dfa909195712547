#!/usr/bin/env bash
# The chaos suite's long form: many kill -9 cycles of a loaded kvstored (default
# mode, and durable mode when kvstored has --durability), clients killed
# mid-insert and mid-delivery, a full spill disk (root: a size-limited tmpfs).
# The test command runs a bounded form (ctest -R chaos). Prints cycles run,
# inserts acknowledged, lost (default vs durable) and corrupt reads.
# Usage: deploy/chaos.sh [CYCLES, default 50] [extra kvstore-chaos flags]
set -euo pipefail
cd "$(dirname "$0")/.."
CYCLES=${1:-50}
shift || true
BUILD_DIR=${KVSTORE_BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" --target kvstore-chaos kvstored
exec "$BUILD_DIR/tests/chaos/kvstore-chaos" --cycles "$CYCLES" --load-seconds 5 \
  --client-rounds "$CYCLES" "$@"
