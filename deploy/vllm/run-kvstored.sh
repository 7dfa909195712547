#!/bin/bash
# kvstored for the 1P1D example: all interfaces (the engines are on other hosts),
# a 16 GiB host tier, spill on local disk. NOT RUN HERE (see README.md).
set -euo pipefail
KVSTORED=${KVSTORED:-$(dirname "$0")/../../build/server/kvstored}
exec "$KVSTORED" --listen "${LISTEN:-0.0.0.0:7400}" --metrics "${METRICS:-0.0.0.0:9400}" \
  --memory "${MEMORY:-16GiB}" --data-dir "${DATA_DIR:-/var/lib/kvstore}" --spill "${SPILL:-100GiB}" \
  --ttl "${TTL:-10m}" ${TOKEN_FILE:+--token-file "$TOKEN_FILE"}
