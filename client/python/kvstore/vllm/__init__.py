"""vLLM KV connector over kvstored: ``kvstore.vllm.KVStoreConnector``.

Imports without vLLM: the logic lives in plain classes (SchedulerLogic,
WorkerLogic) that the vLLM-facing KVStoreConnector wraps.
"""

from kvstore.vllm.config import ConnectorConfig, from_mapping, from_vllm_config
from kvstore.vllm.connector import HAVE_VLLM, KVStoreConnector
from kvstore.vllm.keys import RequestKeys
from kvstore.vllm.metadata import KVStoreConnectorMetadata, LoadSpec, SaveSpec
from kvstore.vllm.scheduler import SchedulerLogic
from kvstore.vllm.worker import WorkerLogic

__all__ = [
    "HAVE_VLLM",
    "ConnectorConfig",
    "KVStoreConnector",
    "KVStoreConnectorMetadata",
    "LoadSpec",
    "RequestKeys",
    "SaveSpec",
    "SchedulerLogic",
    "WorkerLogic",
    "from_mapping",
    "from_vllm_config",
]
