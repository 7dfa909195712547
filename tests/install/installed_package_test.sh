#!/bin/bash
# Installs libkvstore into a temp prefix, builds tests/install/consumer outside
# the tree against it three ways (CMake package: shared and static; pkg-config),
# and runs each against a real kvstored on a free loopback port.
#   installed_package_test.sh BUILD_DIR SOURCE_DIR KVSTORED
set -euo pipefail
build=$1 src=$2 kvstored=$3
work=$(mktemp -d /tmp/kvstore-install-test.XXXXXX)
daemon_pid=
cleanup() {
  if [[ -n $daemon_pid ]]; then kill "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
prefix=$work/prefix

echo "== cmake --install (component libkvstore) into $prefix"
cmake --install "$build" --prefix "$prefix" --component libkvstore > "$work/install.log"

echo "== installed headers are the client API alone"
headers=$(cd "$prefix/include" && find . -type f | sort | tr '\n' ' ')
expected="./kvstore/client.h ./kvstore/key.h ./kvstore/status.h ./kvstore/types.h ./kvstore/units.h "
if [[ $headers != "$expected" ]]; then
  echo "FAIL: installed headers are [$headers], expected [$expected]"; exit 1
fi
if grep -n -E '^#include .*(capnp|kvstore/server|kvstore/transport|kvstore/rdma|wire_convert|frame\.h|spdlog)' "$prefix"/include/kvstore/*.h; then
  echo "FAIL: an installed header includes protocol or daemon internals"; exit 1
fi
libdir=$(dirname "$(find "$prefix" -name 'libkvstore.so' | head -1)")
for f in libkvstore.so libkvstore.a pkgconfig/kvstore.pc cmake/kvstore/kvstoreConfig.cmake; do
  [[ -e $libdir/$f ]] || { echo "FAIL: $libdir/$f not installed"; exit 1; }
done

echo "== build the consumer with find_package(kvstore)"
cmake -S "$src/tests/install/consumer" -B "$work/consumer" -G Ninja \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release > "$work/consumer-cmake.log" \
  || { cat "$work/consumer-cmake.log"; exit 1; }
cmake --build "$work/consumer" > "$work/consumer-build.log" || { cat "$work/consumer-build.log"; exit 1; }

echo "== build the consumer with pkg-config"
export PKG_CONFIG_PATH=$libdir/pkgconfig
# shellcheck disable=SC2046
g++ -std=c++20 -O1 -o "$work/consumer_pkgconfig" "$src/tests/install/consumer/main.cc" \
  $(pkg-config --cflags --libs kvstore) -Wl,-rpath,"$libdir"

echo "== start kvstored (it picks a free port and logs it)"
mkdir -p "$work/data"
"$kvstored" --listen "127.0.0.1:0" --metrics "" --data-dir "$work/data" --no-mlock \
  --memory 64MiB > "$work/kvstored.log" 2>&1 &
daemon_pid=$!
port=
for _ in $(seq 1 3000); do
  port=$(sed -n 's/.*serving on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/kvstored.log" | head -1)
  [[ -n $port ]] && break
  kill -0 "$daemon_pid" 2>/dev/null || { echo "kvstored exited:"; cat "$work/kvstored.log"; exit 1; }
  sleep 0.02
done
[[ -n $port ]] || { echo "kvstored did not start serving within 60 s:"; cat "$work/kvstored.log"; exit 1; }

for prog in "$work/consumer/consumer_shared" "$work/consumer/consumer_static" "$work/consumer_pkgconfig"; do
  echo "== run $(basename "$prog")"
  "$prog" "127.0.0.1:$port"
done
ldd "$work/consumer/consumer_static" > "$work/ldd-static.txt"
ldd "$work/consumer/consumer_shared" > "$work/ldd-shared.txt"
if grep -q libkvstore "$work/ldd-static.txt"; then
  echo "FAIL: consumer_static loads libkvstore.so"; exit 1
fi
grep -q "libkvstore.so.0 => $libdir" "$work/ldd-shared.txt" || {
  echo "FAIL: consumer_shared does not load the installed libkvstore.so:"; cat "$work/ldd-shared.txt"; exit 1; }
echo "installed package test passed"
