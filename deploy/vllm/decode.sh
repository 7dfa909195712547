#!/bin/bash
# Decode instance (kv_consumer). NOT RUN HERE (see README.md).
#   STORE=storehost:7400 ./decode.sh MODEL
set -euo pipefail
MODEL=${1:?usage: decode.sh MODEL}
STORE=${STORE:-127.0.0.1:7400}
KVSTORE_PY=${KVSTORE_PY:-$(cd "$(dirname "$0")/../../build/client/python" 2>/dev/null && pwd || true)}
export PYTHONPATH=${KVSTORE_PY}${PYTHONPATH:+:$PYTHONPATH}
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-1}
exec vllm serve "$MODEL" --port "${PORT:-8200}" --block-size 16 \
  --kv-transfer-config "{\"kv_connector\":\"KVStoreConnector\",\"kv_connector_module_path\":\"kvstore.vllm\",\"kv_role\":\"kv_consumer\",\"kv_load_failure_policy\":\"recompute\",\"kv_connector_extra_config\":{\"store\":\"$STORE\",\"transport\":\"tcp\",\"load_timeout\":30}}"
