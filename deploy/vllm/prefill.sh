#!/bin/bash
# Prefill instance (kv_producer). NOT RUN HERE (see README.md).
#   STORE=storehost:7400 ./prefill.sh MODEL
set -euo pipefail
MODEL=${1:?usage: prefill.sh MODEL}
STORE=${STORE:-127.0.0.1:7400}
KVSTORE_PY=${KVSTORE_PY:-$(cd "$(dirname "$0")/../../build/client/python" 2>/dev/null && pwd || true)}
export PYTHONPATH=${KVSTORE_PY}${PYTHONPATH:+:$PYTHONPATH}
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}
exec vllm serve "$MODEL" --port "${PORT:-8100}" --block-size 16 \
  --kv-transfer-config "{\"kv_connector\":\"KVStoreConnector\",\"kv_connector_module_path\":\"kvstore.vllm\",\"kv_role\":\"kv_producer\",\"kv_connector_extra_config\":{\"store\":\"$STORE\",\"transport\":\"tcp\"}}"
