#!/bin/bash
# One vLLM instance of the 1P1D example with KVStoreConnector. NOT RUN HERE (see README.md).
#   STORE=storehost:7400 ./serve.sh prefill MODEL    # kv_producer, GPU 0, port 8100
#   STORE=storehost:7400 ./serve.sh decode MODEL     # kv_consumer, GPU 1, port 8200
set -euo pipefail
ROLE=${1:?usage: serve.sh prefill|decode MODEL}
MODEL=${2:?usage: serve.sh prefill|decode MODEL}
STORE=${STORE:-127.0.0.1:7400}
case $ROLE in
  prefill) KV_ROLE=kv_producer; GPU=0; PORT=${PORT:-8100}; EXTRA="" ;;
  decode) KV_ROLE=kv_consumer; GPU=1; PORT=${PORT:-8200}
          EXTRA=",\"load_timeout\":30" ;;
  *) echo "serve.sh: role must be prefill or decode, got '$ROLE'" >&2; exit 2 ;;
esac
KVSTORE_PY=${KVSTORE_PY:-$(cd "$(dirname "$0")/../../build/client/python" 2>/dev/null && pwd || true)}
export PYTHONPATH=${KVSTORE_PY}${PYTHONPATH:+:$PYTHONPATH}
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-$GPU}
CONFIG="{\"kv_connector\":\"KVStoreConnector\",\"kv_connector_module_path\":\"kvstore.vllm\",\
\"kv_role\":\"$KV_ROLE\",\"kv_load_failure_policy\":\"recompute\",\
\"kv_connector_extra_config\":{\"store\":\"$STORE\",\"transport\":\"tcp\"$EXTRA}}"
exec vllm serve "$MODEL" --port "$PORT" --block-size 16 --kv-transfer-config "$CONFIG"
