#!/usr/bin/env bash
# Installs the Debian packages kvstore builds, tests and demos with.
# Idempotent: skips apt entirely when everything is already installed.
set -euo pipefail
PKGS=(
  build-essential cmake ninja-build pkg-config git curl
  librocksdb-dev capnproto libcapnp-dev libibverbs-dev rdma-core
  libboost-dev libboost-system-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev libspdlog-dev libfmt-dev libxxhash-dev libssl-dev
  nlohmann-json3-dev redis-server gnuplot-nox
  python3-dev python3-pybind11 pybind11-dev python3-numpy python3-pytest python3-torch
  clang-14 libclang-rt-14-dev ccache
  libsentencepiece-dev sentencepiece
  etcd-server etcd-client
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
