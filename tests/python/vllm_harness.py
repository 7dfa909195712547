"""Drives kvstore.vllm.KVStoreConnector the way vLLM v1 does, without vLLM.

Objects are shaped as vLLM passes them (see shared VLLM-CONNECTOR.md): a
VllmConfig with model/cache/parallel/kv_transfer configs, requests with
request_id / prompt_token_ids / kv_transfer_params, KVCacheBlocks with
get_block_ids(), a SchedulerOutput with scheduled_new_reqs,
scheduled_cached_reqs and num_scheduled_tokens, layer names like
"model.layers.0.self_attn.attn", and per-layer paged KV tensors
[2, num_blocks, block_size, num_kv_heads, head_size].

MiniEngine plays one vLLM instance (scheduler + one worker) with a toy
"model" whose KV at position p of layer l is a deterministic function of the
tokens up to p, so any process can compute the expected bytes.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from typing import Any

import numpy as np
import torch

from kvstore.vllm import KVStoreConnector


class KVConnectorRole(enum.Enum):
    SCHEDULER = 0
    WORKER = 1


@dataclasses.dataclass
class KVTransferConfig:
    kv_role: str
    kv_connector_extra_config: dict
    kv_connector: str = "KVStoreConnector"
    kv_connector_module_path: str = "kvstore.vllm"


@dataclasses.dataclass
class ModelConfig:
    model: str
    dtype: Any
    num_layers: int
    num_kv_heads: int
    head_size: int

    def get_num_layers(self, parallel_config):
        return self.num_layers

    def get_num_kv_heads(self, parallel_config):
        return self.num_kv_heads // parallel_config.tensor_parallel_size

    def get_head_size(self):
        return self.head_size


@dataclasses.dataclass
class CacheConfig:
    block_size: int = 16
    cache_dtype: str = "auto"


@dataclasses.dataclass
class ParallelConfig:
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1


@dataclasses.dataclass
class VllmConfig:
    model_config: ModelConfig
    cache_config: CacheConfig
    parallel_config: ParallelConfig
    kv_transfer_config: KVTransferConfig


@dataclasses.dataclass
class Request:
    request_id: str
    prompt_token_ids: list[int]
    kv_transfer_params: dict | None = None
    output_token_ids: list[int] = dataclasses.field(default_factory=list)
    num_computed_tokens: int = 0

    @property
    def all_token_ids(self):
        return self.prompt_token_ids + self.output_token_ids


class KVCacheBlocks:
    def __init__(self, ids):
        self._ids = list(ids)

    def get_block_ids(self):
        return (list(self._ids),)


@dataclasses.dataclass
class NewRequestData:
    req_id: str
    prompt_token_ids: list[int]
    block_ids: tuple
    num_computed_tokens: int


@dataclasses.dataclass
class CachedRequestData:
    req_ids: list[str] = dataclasses.field(default_factory=list)
    resumed_req_ids: set = dataclasses.field(default_factory=set)
    new_token_ids: list = dataclasses.field(default_factory=list)
    new_block_ids: list = dataclasses.field(default_factory=list)
    num_computed_tokens: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class SchedulerOutput:
    scheduled_new_reqs: list = dataclasses.field(default_factory=list)
    scheduled_cached_reqs: CachedRequestData = dataclasses.field(default_factory=CachedRequestData)
    num_scheduled_tokens: dict = dataclasses.field(default_factory=dict)
    finished_req_ids: set = dataclasses.field(default_factory=set)


def layer_name(i: int) -> str:
    return f"model.layers.{i}.self_attn.attn"


def toy_kv(tokens: list[int], pos: int, layer: int, heads: int, head_size: int,
           dtype=torch.bfloat16) -> torch.Tensor:
    """KV [2, heads, head_size] of the token at `pos` in `layer`: depends on tokens[:pos+1]."""
    h = hashlib.sha256(np.asarray(tokens[: pos + 1], dtype=np.uint32).tobytes() + bytes([layer]))
    g = torch.Generator().manual_seed(int.from_bytes(h.digest()[:8], "little") & (2**63 - 1))
    return torch.randn(2, heads, head_size, generator=g).to(dtype)


@dataclasses.dataclass
class Shape:
    layers: int = 4
    heads: int = 2
    head_size: int = 32
    block_size: int = 16
    num_blocks: int = 64
    dtype: torch.dtype = torch.bfloat16


def make_config(role: str, store: str, shape: Shape, **extra) -> VllmConfig:
    return VllmConfig(
        ModelConfig("toy-llama", shape.dtype, shape.layers, shape.heads, shape.head_size),
        CacheConfig(shape.block_size),
        ParallelConfig(),
        KVTransferConfig(role, {"store": store, **extra}),
    )


class MiniEngine:
    """One vLLM instance: a scheduler-side and a worker-side connector, a paged KV cache,
    a block allocator handing out ids from `first_block_id` on."""

    def __init__(self, role: str, store: str, shape: Shape = Shape(), first_block_id: int = 0,
                 client_factory=None, **extra):
        self.shape = shape
        cfg = make_config(role, store, shape, **extra)
        self.scheduler = KVStoreConnector(cfg, KVConnectorRole.SCHEDULER, None,
                                          client_factory=client_factory)
        self.worker = KVStoreConnector(cfg, KVConnectorRole.WORKER, None,
                                       client_factory=client_factory)
        s = shape
        self.kv = {layer_name(i): torch.zeros(2, s.num_blocks, s.block_size, s.heads,
                                              s.head_size, dtype=s.dtype)
                   for i in range(s.layers)}
        self.worker.register_kv_caches(self.kv)
        self.free = list(range(first_block_id, s.num_blocks)) + list(range(first_block_id))
        self.computed_positions: list[int] = []  # positions the toy model computed (all layers)
        self.freed: list[str] = []  # request ids whose blocks went back to the pool
        self.load_errors: set[int] = set()
        self.finished_sending: set[str] = set()
        self.finished_recving: set[str] = set()
        self.step_log: list[str] = []

    def close(self):
        self.worker.shutdown()
        self.scheduler.shutdown()

    # -- the worker's part of one step (gpu_model_runner + attention layers) --
    def worker_step(self, so: SchedulerOutput, meta, compute: list[tuple[Request, list[int], int, int]]):
        w = self.worker
        w.handle_preemptions(meta)
        w.bind_connector_metadata(meta)
        w.start_load_kv(forward_context=None)
        for i in range(self.shape.layers):
            name = layer_name(i)
            w.wait_for_layer_load(name)
            for req, block_ids, start, end in compute:  # "attention": write KV of new tokens
                for p in range(start, end):
                    b, off = block_ids[p // self.shape.block_size], p % self.shape.block_size
                    self.kv[name][:, b, off] = toy_kv(req.all_token_ids, p, i, self.shape.heads,
                                                      self.shape.head_size, self.shape.dtype)
            w.save_kv_layer(name, self.kv[name], attn_metadata=None)
        for req, _, start, end in compute:
            self.computed_positions += list(range(start, end))
        w.wait_for_save()
        sending, recving = w.get_finished(so.finished_req_ids)
        self.finished_sending |= sending or set()
        self.finished_recving |= recving or set()
        self.load_errors |= w.get_block_ids_with_load_errors()
        w.clear_connector_metadata()

    def idle_step(self, finished: set[str] = frozenset()):
        so = SchedulerOutput(finished_req_ids=set(finished))
        meta = self.scheduler.build_connector_meta(so)
        self.worker_step(so, meta, [])

    def allocate(self, n: int) -> list[int]:
        ids, self.free = self.free[:n], self.free[n:]
        return ids

    def run_request(self, req: Request, chunk: int | None = None, max_new_tokens: int = 1,
                    max_wait_steps: int = 2000):
        """Runs a request through vLLM's call order until it finishes; returns
        (block_ids, num_external_tokens, delay_free, kv_transfer_params)."""
        s = self.shape
        sched = self.scheduler
        prompt_len = len(req.prompt_token_ids)
        n_ext, is_async = None, False
        while n_ext is None:
            n_ext, is_async = sched.get_num_new_matched_tokens(req, 0)
        n_blocks = -(-(prompt_len + max_new_tokens) // s.block_size)
        block_ids = self.allocate(n_blocks)
        sched.update_state_after_alloc(req, KVCacheBlocks(block_ids), n_ext)
        computed = 0
        if is_async:
            # WAITING_FOR_REMOTE_KVS: steps run (for other requests) until the worker reports it.
            meta = sched.build_connector_meta(SchedulerOutput())
            self.worker_step(SchedulerOutput(), meta, [])
            steps = 0
            while req.request_id not in self.finished_recving:
                steps += 1
                assert steps < max_wait_steps, "async load never finished"
                import time
                time.sleep(0.005)
                self.idle_step()
            sched.update_state_after_alloc(req, KVCacheBlocks(block_ids), 0)
        computed = n_ext
        # Prefill (chunked when asked), then decode steps; new request first, cached after.
        first = True
        total = prompt_len + max_new_tokens - 1  # the last sampled token is never fed back
        while computed < total:
            if computed < prompt_len:
                n = prompt_len - computed if chunk is None else min(chunk, prompt_len - computed)
            else:
                n = 1
            so = SchedulerOutput(num_scheduled_tokens={req.request_id: n})
            if first:
                so.scheduled_new_reqs.append(NewRequestData(req.request_id, list(req.prompt_token_ids),
                                                            (list(block_ids),), computed))
                first = False
            else:
                so.scheduled_cached_reqs = CachedRequestData([req.request_id], set(), [[]], [None],
                                                              [computed])
            meta = sched.build_connector_meta(so)
            self.worker_step(so, meta, [(req, block_ids, computed, computed + n)])
            computed += n
            req.num_computed_tokens = computed
            if computed >= prompt_len and len(req.output_token_ids) < max_new_tokens:
                req.output_token_ids.append(1000 + len(req.output_token_ids))  # "sampled"
        delay, params = sched.request_finished(req, block_ids)
        if not delay:
            self.freed.append(req.request_id)
        return block_ids, n_ext, delay, params

    def finish_sending(self, req_id: str, max_steps: int = 4000):
        """Steps (with the request in finished_req_ids once) until the worker reports its
        saves done; only then does vLLM free its blocks."""
        import time
        self.idle_step({req_id})
        steps = 0
        while req_id not in self.finished_sending:
            steps += 1
            assert steps < max_steps, "saves never finished"
            time.sleep(0.005)
            self.idle_step()
        self.freed.append(req_id)

    def block_bytes(self, layer: int, block_id: int) -> bytes:
        return self.kv[layer_name(layer)][:, block_id].contiguous().view(torch.uint8).numpy().tobytes()


def expected_block(tokens: list[int], block: int, layer: int, shape: Shape) -> bytes:
    """The bytes a block of a layer holds once computed: [2, block_size, heads, head_size]."""
    t = torch.stack([toy_kv(tokens, p, layer, shape.heads, shape.head_size, shape.dtype)
                     for p in range(block * shape.block_size, (block + 1) * shape.block_size)], dim=1)
    return t.contiguous().view(torch.uint8).numpy().tobytes()
