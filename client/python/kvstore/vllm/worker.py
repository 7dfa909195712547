"""Worker-side logic of the vLLM connector, free of vLLM imports.

Saving: save_kv_layer copies the layer's blocks of each request into a
registered staging buffer (the one copy; on a GPU it is the device-to-host copy
that has to happen anyway) and queues them for a background sender thread, so
the forward pass never waits for the network. The sender inserts each block
(K then V, 2 x block_size x kv_heads x head_size) under its per-layer key;
request ids whose saves are all done show in get_finished's sending set.

Loading: prefix-cache hits load synchronously, layer by layer, on a loader
thread; wait_for_layer_load(layer) waits only for that layer. Handoffs from a
producer load asynchronously (drop_select: the entries leave the store) and
show in get_finished's receiving set. Blocks that could not be loaded (missing,
wrong size or layout, timed out) are reported by get_block_ids_with_load_errors.

Paged KV layout: per layer one tensor [2, num_blocks, block_size, num_kv_heads,
head_size] (K and V first, as vLLM's FlashAttention-style backends lay it out).

Thread-safety: vLLM calls from one thread; the sender and loader threads share
state under self._lock.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import queue
import threading
from typing import Any, Callable

import kvstore
from kvstore.vllm.config import ConnectorConfig, dtype_name
from kvstore.vllm.keys import RequestKeys
from kvstore.vllm.metadata import KVStoreConnectorMetadata, LoadSpec, SaveSpec

log = logging.getLogger("kvstore.vllm")

_STOP = object()


class StagingPool:
    """Registered host buffers reused across transfers (registered once each).

    Buffers are torch tensors [capacity_blocks, 2, block_size, kv_heads, head_size]
    of the KV dtype, pinned when the KV cache is on a GPU."""

    def __init__(self, client: kvstore.Client, block_shape: tuple, dtype: Any, pinned: bool):
        self._client = client
        self._block_shape = block_shape
        self._dtype = dtype
        self._pinned = pinned
        self._free: dict[int, list] = collections.defaultdict(list)
        self._lock = threading.Lock()
        self._all: list = []

    def get(self, blocks: int):
        import torch

        cap = 1
        while cap < blocks:
            cap *= 2
        with self._lock:
            if self._free[cap]:
                return self._free[cap].pop()
        t = torch.empty((cap, *self._block_shape), dtype=self._dtype, pin_memory=self._pinned)
        region = self._client.register_region(t)
        item = (cap, t, region)
        with self._lock:
            self._all.append(item)
        return item

    def put(self, item) -> None:
        with self._lock:
            self._free[item[0]].append(item)

    def close(self) -> None:
        with self._lock:
            for _, _, region in self._all:
                region.unregister()
            self._all.clear()
            self._free.clear()


class _SaveJob:
    __slots__ = ("req_id", "layer", "keys", "staging", "count", "handoff", "ready")

    def __init__(self, req_id, layer, keys, staging, count, handoff, ready):
        self.req_id, self.layer, self.keys = req_id, layer, keys
        self.staging, self.count, self.handoff = staging, count, handoff
        self.ready = ready  # CUDA event of the device-to-host copy, None on the CPU


class WorkerLogic:
    def __init__(self, config: ConnectorConfig, client_factory: Callable[[], kvstore.Client],
                 load_threads: int = 4):
        self.config = config
        self.namespace = config.namespace()
        self.client = client_factory()
        self._layers: dict[str, int] = {}
        self._kv: list = []
        self._pool: StagingPool | None = None
        self._meta: KVStoreConnectorMetadata | None = None
        self._lock = threading.Condition()
        # All below under _lock.
        self._pending_saves: collections.Counter = collections.Counter()  # req -> jobs in flight
        self._saving_reqs: set[str] = set()  # requests that had saves (reported once finished)
        self._finished_reqs: set[str] = set()  # vLLM said these finished
        self._recving_done: set[str] = set()
        self._load_errors: set[int] = set()
        self._save_errors = 0
        self.stats = collections.Counter()  # bytes_saved, bytes_loaded, blocks_*...
        # Per step: synchronous loads.
        self._layer_events: list[threading.Event] | None = None
        self._sync_future: concurrent.futures.Future | None = None
        self._send_q: queue.Queue = queue.Queue()
        self._sender = threading.Thread(target=self._send_loop, name="kvstore-sender", daemon=True)
        self._sender.start()
        self._sync_loader = concurrent.futures.ThreadPoolExecutor(1, "kvstore-load")
        self._async_loader = concurrent.futures.ThreadPoolExecutor(load_threads, "kvstore-handoff")

    # -- setup --
    def register_kv_caches(self, kv_caches: dict[str, Any]) -> None:
        import torch

        cfg = self.config
        expect = (2, None, cfg.block_size, cfg.num_kv_heads, cfg.head_size)
        for i, (name, t) in enumerate(kv_caches.items()):
            shape = tuple(t.shape)
            if len(shape) != 5 or any(e is not None and e != s for e, s in zip(expect, shape)):
                raise ValueError(
                    f"KVStoreConnector: layer {name} has KV cache shape {shape}; expected "
                    f"[2, num_blocks, {cfg.block_size}, {cfg.num_kv_heads}, {cfg.head_size}] "
                    "(a FlashAttention-style NHD layout)")
            if dtype_name(t.dtype) != cfg.dtype:
                raise ValueError(f"KVStoreConnector: layer {name} holds {dtype_name(t.dtype)} but "
                                 f"the key namespace says {cfg.dtype}")
            self._layers[name] = i
            self._kv.append(t)
        if len(self._kv) != cfg.num_layers:
            log.warning("KVStoreConnector: %d KV layers registered, the model config says %d",
                        len(self._kv), cfg.num_layers)
        first = self._kv[0]
        pinned = first.is_cuda and torch.cuda.is_available()
        self._pool = StagingPool(self.client, (2, *first.shape[2:]), first.dtype, pinned)

    def layer_index(self, layer_name: str) -> int:
        return self._layers[layer_name]

    # -- per step --
    def bind_connector_metadata(self, meta: KVStoreConnectorMetadata) -> None:
        self._meta = meta

    def clear_connector_metadata(self) -> None:
        self._meta = None

    def start_load_kv(self) -> None:
        meta = self._meta
        if meta is None or not meta.loads:
            return
        sync = []
        for spec in meta.loads:
            if spec.asynchronous:
                self._async_loader.submit(self._run_async_load, spec)
                continue
            if spec.handoff and spec.discard_blocks:
                self._async_loader.submit(self._discard, spec)
            if spec.end_block > spec.first_block:
                sync.append(spec)
        if sync:
            self._layer_events = [threading.Event() for _ in self._kv]
            self._sync_future = self._sync_loader.submit(self._run_sync_loads, sync,
                                                         self._layer_events)

    def wait_for_layer_load(self, layer_name: str) -> None:
        events = self._layer_events
        if events is not None:
            events[self._layers[layer_name]].wait()

    def save_kv_layer(self, layer_name: str, kv_layer: Any) -> None:
        import torch

        meta = self._meta
        if meta is None or not meta.saves:
            return
        layer = self._layers[layer_name]
        for spec in meta.saves:
            n = spec.end_block - spec.first_block
            if n <= 0:
                continue
            keys = self._keys(spec).layer_keys(layer, spec.first_block, spec.end_block)
            staging = self._pool.get(n)
            ids = spec.block_ids[spec.first_block:spec.end_block]
            blocks = [kv_layer[:, b] for b in ids]  # each [2, block_size, heads, head_size]
            ready = None
            if kv_layer.is_cuda:
                # Gather on the GPU, then one device-to-host copy into pinned staging;
                # the sender waits for the event, the forward pass does not.
                staging[1][:n].copy_(torch.stack(blocks), non_blocking=True)
                ready = torch.cuda.Event()
                ready.record()
            else:
                torch.stack(blocks, out=staging[1][:n])  # one gather, no temporary
            with self._lock:
                self._pending_saves[spec.req_id] += 1
                self._saving_reqs.add(spec.req_id)
            self._send_q.put(_SaveJob(spec.req_id, layer, keys, staging, n, spec.handoff, ready))

    def wait_for_save(self) -> None:
        # The blocks were copied out in save_kv_layer; on a GPU make sure those
        # copies finished before vLLM reuses the KV buffers.
        if self._kv and self._kv[0].is_cuda:
            import torch

            torch.cuda.current_stream().synchronize()
        # Synchronous loads of this step are complete (every layer waited) or finish now.
        fut, self._sync_future = self._sync_future, None
        if fut is not None:
            fut.result()
        self._layer_events = None

    def get_finished(self, finished_req_ids: set[str]):
        with self._lock:
            self._finished_reqs.update(r for r in finished_req_ids if r in self._saving_reqs)
            sending = {r for r in self._finished_reqs if self._pending_saves[r] == 0}
            for r in sending:
                self._finished_reqs.discard(r)
                self._saving_reqs.discard(r)
                del self._pending_saves[r]
            recving, self._recving_done = self._recving_done, set()
        return (sending or None), (recving or None)

    def get_block_ids_with_load_errors(self) -> set[int]:
        with self._lock:
            errors, self._load_errors = self._load_errors, set()
        return errors

    def wait_for_all_saves(self, timeout: float | None = None) -> bool:
        """Blocks until every queued save is done (tests, shutdown)."""
        with self._lock:
            return self._lock.wait_for(lambda: sum(self._pending_saves.values()) == 0, timeout)

    def shutdown(self) -> None:
        self.wait_for_all_saves(timeout=self.config.load_timeout)
        self._send_q.put(_STOP)
        self._sender.join(timeout=10)
        self._sync_loader.shutdown(wait=True)
        self._async_loader.shutdown(wait=True)
        if self._pool is not None:
            self._pool.close()
        self.client.close()

    # -- internals --
    def _keys(self, spec: LoadSpec | SaveSpec) -> RequestKeys:
        return RequestKeys(self.namespace, self.config.block_size, spec.token_ids)

    def _send_loop(self) -> None:
        cfg = self.config
        bb = cfg.block_bytes
        while True:
            job = self._send_q.get()
            if job is _STOP:
                return
            cap, buf, region = job.staging
            try:
                if job.ready is not None:
                    job.ready.synchronize()
                slices = [(region, j * bb, bb) for j in range(job.count)]
                stored = self.client.insert_many_from(job.keys, slices, layout=cfg.layout,
                                                      producer="vllm", ttl=cfg.ttl,
                                                      threads=cfg.send_threads)
                if job.handoff:
                    # Already stored (another request published the same prefix):
                    # add a taker so this request's consumer finds it too.
                    for j, (k, new) in enumerate(zip(job.keys, stored)):
                        if not new and self.client.retain([k]) == 0:
                            self.client.insert_from(k, region, j * bb, bb, layout=cfg.layout,
                                                    producer="vllm", ttl=cfg.ttl)
                with self._lock:
                    self.stats["blocks_saved"] += job.count
                    self.stats["bytes_saved"] += job.count * bb
            except kvstore.KVStoreError as e:
                log.warning("kvstore save of request %s layer %d (%d blocks) failed: %s; a "
                            "consumer will recompute them", job.req_id, job.layer, job.count, e)
                with self._lock:
                    self._save_errors += 1
                    self.stats["save_errors"] += 1
            finally:
                self._pool.put(job.staging)
                with self._lock:
                    self._pending_saves[job.req_id] -= 1
                    self._lock.notify_all()

    def _load_layer(self, spec: LoadSpec, keys: RequestKeys, layer: int, first: int, end: int,
                    scatter: bool) -> set[int]:
        """Loads blocks [first, end) of one layer; returns the indexes (block numbers) that failed."""
        import torch

        n = end - first
        if n <= 0:
            return set()
        cfg = self.config
        bb = cfg.block_bytes
        ks = keys.layer_keys(layer, first, end)
        staging = self._pool.get(n)
        cap, buf, region = staging
        try:
            slices = [(region, j * bb, bb) for j in range(n)]
            failed: set[int] = set()
            metas: list = [None] * n
            try:
                if spec.handoff:
                    metas = self.client.drop_select_into_regions(ks, slices, cfg.load_timeout,
                                                                 node=spec.node)
                else:
                    metas = self.client.select_into_regions(ks, slices, node=spec.node)
            except kvstore.KVStoreError as e:
                # One call is all-or-nothing: find out block by block what is there.
                log.debug("kvstore load of %s layer %d failed as a batch (%s)", spec.req_id, layer, e)
                for j in range(n):
                    try:
                        if spec.handoff:
                            metas[j] = self.client.drop_select_into_regions(
                                [ks[j]], [slices[j]], 0, node=spec.node)[0]
                        else:
                            metas[j] = self.client.select_into_regions(
                                [ks[j]], [slices[j]], node=spec.node)[0]
                    except kvstore.KVStoreError:
                        failed.add(first + j)
            for j, m in enumerate(metas):
                if m is not None and (m.size != bb or m.layout != cfg.layout):
                    log.warning("kvstore block %d of request %s layer %d holds %d bytes of layout "
                                "%r, expected %d of %r: not used", first + j, spec.req_id, layer,
                                m.size, m.layout, bb, cfg.layout)
                    failed.add(first + j)
            if scatter:
                kv = self._kv[layer]
                good = [j for j in range(n) if first + j not in failed]
                if good:
                    dst = torch.tensor([spec.block_ids[first + j] for j in good], device=kv.device)
                    src = buf[:n] if len(good) == n else buf[torch.tensor(good)]
                    # One scatter: blocks [n, 2, ...] -> kv[:, ids] ([2, n, ...]).
                    kv[:, dst] = src.to(kv.device, non_blocking=True).transpose(0, 1)
                    if kv.is_cuda:  # the staging buffer goes back to the pool below
                        torch.cuda.current_stream(kv.device).synchronize()
                with self._lock:
                    self.stats["blocks_loaded"] += n - len(failed)
                    self.stats["bytes_loaded"] += (n - len(failed)) * bb
            return failed
        finally:
            self._pool.put(staging)

    def _load_spec(self, spec: LoadSpec, layers=None) -> None:
        keys = self._keys(spec)
        failed: set[int] = set()
        for layer in layers if layers is not None else range(len(self._kv)):
            failed |= self._load_layer(spec, keys, layer, spec.first_block, spec.end_block, True)
        if failed:
            bad = {spec.block_ids[i] for i in failed}
            log.warning("kvstore: %d blocks of request %s failed to load: %s", len(bad),
                        spec.req_id, sorted(bad))
            with self._lock:
                self._load_errors |= bad

    def _discard(self, spec: LoadSpec) -> None:
        """Handoff blocks this instance computed itself: take them out of the store."""
        keys = self._keys(spec)
        for layer in range(len(self._kv)):
            self._load_layer(spec, keys, layer, 0, spec.discard_blocks, scatter=False)

    def _run_async_load(self, spec: LoadSpec) -> None:
        try:
            if spec.discard_blocks:
                self._discard(spec)
            self._load_spec(spec)
        except Exception:  # a bug must not leave the request waiting forever
            log.exception("kvstore: loading request %s failed", spec.req_id)
            with self._lock:
                self._load_errors |= set(spec.block_ids[spec.first_block:spec.end_block])
        finally:
            with self._lock:
                self._recving_done.add(spec.req_id)

    def _run_sync_loads(self, specs: list[LoadSpec], events: list[threading.Event]) -> None:
        try:
            keys = [self._keys(s) for s in specs]
            for layer in range(len(self._kv)):
                failed_ids: set[int] = set()
                for spec, k in zip(specs, keys):
                    failed = self._load_layer(spec, k, layer, spec.first_block, spec.end_block, True)
                    failed_ids |= {spec.block_ids[i] for i in failed}
                if failed_ids:
                    with self._lock:
                        self._load_errors |= failed_ids
                events[layer].set()
        except Exception:
            log.exception("kvstore: synchronous load failed")
            with self._lock:
                for s in specs:
                    self._load_errors |= set(s.block_ids[s.first_block:s.end_block])
        finally:
            for e in events:
                e.set()
