#!/usr/bin/env bash
# The test command: installs what it needs (Debian packages), builds everything
# and runs the whole suite (unit, integration against the real kvstored, CLI,
# kernels, engines, end to end). Usage: deploy/test.sh [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
BUILD_DIR=${KVSTORE_BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
cd "$BUILD_DIR"
ctest --output-on-failure -j"$(nproc)" --timeout 600 "$@"
