"""The vLLM-facing connector class. Loaded by vLLM with

    --kv-transfer-config '{"kv_connector": "KVStoreConnector",
                           "kv_connector_module_path": "kvstore.vllm",
                           "kv_role": "kv_both",
                           "kv_connector_extra_config": {"store": "HOST:PORT"}}'

It only adapts vLLM's calls to SchedulerLogic (scheduler process) and
WorkerLogic (each worker process). Without vLLM installed the module still
imports (the class then derives from object), which is how the tests drive it.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

import kvstore
from kvstore.vllm.config import ConnectorConfig, from_vllm_config
from kvstore.vllm.metadata import KVStoreConnectorMetadata
from kvstore.vllm.scheduler import SchedulerLogic
from kvstore.vllm.worker import WorkerLogic

log = logging.getLogger("kvstore.vllm")

try:
    from vllm.distributed.kv_transfer.kv_connector.v1.base import (  # type: ignore
        KVConnectorBase_V1 as _Base,
        KVConnectorRole,
    )

    HAVE_VLLM = True
except Exception:  # vLLM absent: same interface, plain base
    _Base = object  # type: ignore[assignment,misc]
    KVConnectorRole = None  # type: ignore[assignment]
    HAVE_VLLM = False


def _role_name(role: Any) -> str:
    name = getattr(role, "name", None) or str(role)
    return name.rsplit(".", 1)[-1].upper()


def _worker_tp_rank(vllm_config: Any) -> int | None:
    extra = getattr(vllm_config.kv_transfer_config, "kv_connector_extra_config", None) or {}
    if "tp_rank" in extra:
        return int(extra["tp_rank"])
    try:
        from vllm.distributed.parallel_state import get_tensor_model_parallel_rank  # type: ignore

        return int(get_tensor_model_parallel_rank())
    except Exception:
        return 0


class KVStoreConnector(_Base):  # type: ignore[misc,valid-type]
    """vLLM KV connector storing paged KV blocks in kvstored, layer by layer.

    kv_connector_extra_config: "store" (HOST:PORT, default 127.0.0.1:7400),
    "token", "load_timeout" (seconds a handoff waits for the producer, 30),
    "prefix_cache" (publish and reuse prompt prefixes, true), "ttl" (seconds),
    "transport" ("auto", "tcp", "local", "rdma"); model settings (model,
    dtype, num_layers, num_kv_heads, head_size, block_size, tp_size, tp_rank)
    override what is read from vLLM's config.
    """

    def __init__(self, vllm_config: Any, role: Any, kv_cache_config: Any = None,
                 client_factory: Any = None):
        if HAVE_VLLM:
            super().__init__(vllm_config=vllm_config, role=role, kv_cache_config=kv_cache_config)
        self._metadata: KVStoreConnectorMetadata | None = None
        self._role = role
        is_worker = _role_name(role) == "WORKER"
        self.config: ConnectorConfig = from_vllm_config(
            vllm_config, _worker_tp_rank(vllm_config) if is_worker else 0)
        cfg = self.config
        factory = client_factory or (lambda: kvstore.Client(
            cfg.store, cfg.token, transport=cfg.transport, client_name=f"vllm-{cfg.role}"))
        self.scheduler: SchedulerLogic | None = None
        self.worker: WorkerLogic | None = None
        if is_worker:
            self.worker = WorkerLogic(cfg, factory)
        else:
            self.scheduler = SchedulerLogic(cfg, factory)
        log.info("KVStoreConnector (%s, %s) on %s, namespace %s", _role_name(role), cfg.role,
                 cfg.store, cfg.namespace())

    # ---- worker side ----
    def register_kv_caches(self, kv_caches: dict[str, Any]) -> None:
        self.worker.register_kv_caches(kv_caches)

    def bind_connector_metadata(self, connector_metadata: KVStoreConnectorMetadata) -> None:
        self._metadata = connector_metadata
        if HAVE_VLLM:
            super().bind_connector_metadata(connector_metadata)
        self.worker.bind_connector_metadata(connector_metadata)

    def clear_connector_metadata(self) -> None:
        self._metadata = None
        if HAVE_VLLM:
            super().clear_connector_metadata()
        self.worker.clear_connector_metadata()

    def handle_preemptions(self, kv_connector_metadata: Any) -> None:
        return None

    def start_load_kv(self, forward_context: Any, **kwargs: Any) -> None:
        self.worker.start_load_kv()

    def wait_for_layer_load(self, layer_name: str) -> None:
        self.worker.wait_for_layer_load(layer_name)

    def save_kv_layer(self, layer_name: str, kv_layer: Any, attn_metadata: Any,
                      **kwargs: Any) -> None:
        self.worker.save_kv_layer(layer_name, kv_layer)

    def wait_for_save(self) -> None:
        self.worker.wait_for_save()

    def get_finished(self, finished_req_ids: set[str]):
        return self.worker.get_finished(finished_req_ids)

    def get_block_ids_with_load_errors(self) -> set[int]:
        return self.worker.get_block_ids_with_load_errors()

    def get_kv_connector_stats(self) -> Any:
        return None

    def shutdown(self) -> None:
        if self.worker is not None:
            self.worker.shutdown()
        if self.scheduler is not None:
            self.scheduler.shutdown()

    # ---- scheduler side ----
    def get_num_new_matched_tokens(self, request: Any, num_computed_tokens: int):
        return self.scheduler.get_num_new_matched_tokens(request, num_computed_tokens)

    def update_state_after_alloc(self, request: Any, blocks: Any, num_external_tokens: int):
        self.scheduler.update_state_after_alloc(request, blocks, num_external_tokens)

    def build_connector_meta(self, scheduler_output: Any) -> KVStoreConnectorMetadata:
        return self.scheduler.build_connector_meta(scheduler_output)

    def update_connector_output(self, connector_output: Any) -> None:
        self.scheduler.update_connector_output(connector_output)

    def request_finished(self, request: Any, block_ids: list[int]):
        return self.scheduler.request_finished(request, block_ids)

    def take_events(self) -> Iterable[Any]:
        return self.scheduler.take_events()

    # ---- class methods ----
    @classmethod
    def get_required_kvcache_layout(cls, vllm_config: Any) -> str | None:
        return "NHD"  # [2, num_blocks, block_size, kv_heads, head_size]

    @classmethod
    def requires_piecewise_for_cudagraph(cls, extra_config: dict[str, Any]) -> bool:
        return True  # layer-wise wait_for_layer_load / save_kv_layer run between graph pieces
