"""Scheduler-side logic of the vLLM connector, free of vLLM imports.

Decides per request what to load (a disaggregated handoff through drop_select,
or a prefix already stored through select) and what to save (the prompt's full
blocks, as they get computed), and tells the workers through
KVStoreConnectorMetadata. Works on vLLM's objects by duck typing: a request
has request_id, prompt_token_ids, kv_transfer_params; blocks have
get_block_ids(); the scheduler output has scheduled_new_reqs,
scheduled_cached_reqs and num_scheduled_tokens.

Thread-safety: vLLM's scheduler calls it from one thread.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable

import kvstore
from kvstore.vllm.config import ConnectorConfig
from kvstore.vllm.keys import RequestKeys
from kvstore.vllm.metadata import KVStoreConnectorMetadata, LoadSpec, SaveSpec

log = logging.getLogger("kvstore.vllm")


def _first_group(block_ids: Any) -> list[int]:
    """vLLM passes block ids per KV-cache group (tuple of lists); one group is used."""
    if block_ids is None:
        return []
    if hasattr(block_ids, "get_block_ids"):
        block_ids = block_ids.get_block_ids()
    if len(block_ids) > 0 and isinstance(block_ids[0], (list, tuple)):
        if len(block_ids) > 1:
            raise ValueError("KVStoreConnector supports one KV-cache group (no hybrid models yet)")
        return list(block_ids[0])
    return list(block_ids)


@dataclasses.dataclass
class _Request:
    req_id: str
    prompt: list[int]
    handoff_in: bool = False  # the KV comes from a producer (do_remote_prefill)
    handoff_out: bool = False  # a consumer will take the KV (do_remote_decode)
    handoff_blocks: int = 0  # blocks the producer says it stored
    handoff_node: str | None = None  # the cluster node they are on (remote_store_node)
    stored_blocks: int = 0  # leading blocks found in the store (prefix cache)
    num_computed: int = 0  # local prefix-cache hit when last asked
    num_external: int = 0
    block_ids: list[int] = dataclasses.field(default_factory=list)
    load_pending: LoadSpec | None = None
    load_issued: bool = False  # vLLM calls update_state_after_alloc again after an async load
    saved_blocks: int = -1  # next block to save; -1 = not decided yet
    saves_issued: bool = False


class SchedulerLogic:
    def __init__(self, config: ConnectorConfig, client_factory: Callable[[], kvstore.Client]):
        self.config = config
        self._client_factory = client_factory
        self._client: kvstore.Client | None = None
        self._namespace = config.namespace(tp_rank=0)  # all ranks store the same blocks
        self._requests: dict[str, _Request] = {}
        self._loads: list[LoadSpec] = []

    # -- helpers --
    @property
    def client(self) -> kvstore.Client:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def _state(self, request: Any) -> _Request:
        st = self._requests.get(request.request_id)
        if st is None:
            params = getattr(request, "kv_transfer_params", None) or {}
            st = _Request(request.request_id, list(request.prompt_token_ids or []))
            st.handoff_in = bool(params.get("do_remote_prefill")) and self.config.is_consumer
            st.handoff_out = bool(params.get("do_remote_decode")) and self.config.is_producer
            if st.handoff_in:
                ns = params.get("kvstore_namespace")
                if ns is not None and ns != self._namespace:
                    log.warning(
                        "request %s: the producer stored KV in namespace %r but this instance "
                        "uses %r (another model, dtype, layout or parallel size); recomputing "
                        "instead of loading", st.req_id, ns, self._namespace)
                    st.handoff_in = False
                else:
                    st.handoff_blocks = int(params.get("kvstore_num_blocks",
                                                       len(st.prompt) // self.config.block_size))
                    node = params.get("remote_store_node")
                    if isinstance(node, str) and node:
                        st.handoff_node = node
                    elif node is not None:
                        log.warning("request %s: kv_transfer_params.remote_store_node must be a "
                                    "HOST:PORT string, got %r; loading where this client's "
                                    "placement puts the keys", st.req_id, node)
            self._requests[st.req_id] = st
        return st

    def _stored_prefix_blocks(self, st: _Request) -> int:
        keys = RequestKeys(self._namespace, self.config.block_size, st.prompt)
        if keys.num_blocks == 0:
            return 0
        # Layers are sent in order, so a block whose first and last layers are
        # stored has all of them (unless evicted since: the load then reports it).
        first = keys.layer_keys(0, 0, keys.num_blocks)
        stored = self.client.match_prefix(first)
        if stored == 0:
            return 0
        last = keys.layer_keys(self.config.num_layers - 1, 0, stored)
        return self.client.match_prefix(last)

    # -- vLLM's scheduler-side calls --
    def get_num_new_matched_tokens(self, request: Any, num_computed_tokens: int):
        st = self._state(request)
        bs = self.config.block_size
        st.num_computed = num_computed_tokens
        if st.handoff_in:
            blocks = min(st.handoff_blocks, len(st.prompt) // bs)
        elif self.config.is_consumer and self.config.prefix_cache:
            try:
                blocks = self._stored_prefix_blocks(st)
            except kvstore.KVStoreError as e:
                log.warning("request %s: prefix lookup in kvstore failed (%s); recomputing",
                            st.req_id, e)
                blocks = 0
            st.stored_blocks = blocks
        else:
            blocks = 0
        # vLLM computes at least the last prompt token itself.
        loadable = min(blocks * bs, max(len(st.prompt) - 1, 0))
        st.num_external = max(0, loadable - num_computed_tokens)
        if st.handoff_in and st.num_external > 0:
            return st.num_external, True  # waits in WAITING_FOR_REMOTE_KVS until loaded
        return st.num_external, False

    def update_state_after_alloc(self, request: Any, blocks: Any, num_external_tokens: int):
        st = self._state(request)
        st.block_ids = _first_group(blocks)
        bs = self.config.block_size
        if st.load_issued or (num_external_tokens == 0 and not st.handoff_in):
            return
        first = st.num_computed // bs
        end = -(-(st.num_computed + num_external_tokens) // bs)  # ceil
        if st.handoff_in:
            # Take every block the producer stored, also those this instance had
            # already (thrown away), so the store keeps nothing of the request.
            end = max(end, min(st.handoff_blocks, len(st.prompt) // bs))
            if end > len(st.block_ids):
                log.warning("request %s: %d blocks allocated for %d handed-off blocks; the rest "
                            "stay in the store until their TTL", st.req_id, len(st.block_ids), end)
                end = len(st.block_ids)
            if end == 0:
                return
            spec = LoadSpec(st.req_id, st.prompt[: end * bs], st.block_ids[:end], first, end,
                            handoff=True, asynchronous=num_external_tokens > 0,
                            discard_blocks=first, node=st.handoff_node)
        else:
            spec = LoadSpec(st.req_id, st.prompt[: end * bs], st.block_ids[:end], first, end,
                            handoff=False, asynchronous=False)
        st.load_pending = spec
        st.load_issued = True
        self._loads.append(spec)

    def _save_start(self, st: _Request) -> int | None:
        """First block to save, or None when this request saves nothing."""
        if st.handoff_in:
            return None  # its KV was just handed over; storing it again would keep it alive
        if st.handoff_out:
            return 0  # every block, so the consumer finds all of them (stored ones retained)
        if self.config.is_producer and self.config.prefix_cache:
            return st.stored_blocks
        return None

    def _plan_save(self, st: _Request, num_computed: int, num_scheduled: int,
                   meta: KVStoreConnectorMetadata):
        if st.saved_blocks < 0:
            start = self._save_start(st)
            st.saved_blocks = len(st.prompt) if start is None else start  # never saves if None
            if start is None:
                return
        bs = self.config.block_size
        done = min(num_computed + num_scheduled, len(st.prompt)) // bs
        done = min(done, len(st.block_ids))
        if done > st.saved_blocks:
            meta.saves.append(SaveSpec(st.req_id, st.prompt[: done * bs], list(st.block_ids[:done]),
                                       st.saved_blocks, done, handoff=st.handoff_out))
            st.saved_blocks = done
            st.saves_issued = True

    def build_connector_meta(self, scheduler_output: Any) -> KVStoreConnectorMetadata:
        meta = KVStoreConnectorMetadata(loads=self._loads)
        self._loads = []
        for st in self._requests.values():
            st.load_pending = None
        num_scheduled = getattr(scheduler_output, "num_scheduled_tokens", {}) or {}
        for new in getattr(scheduler_output, "scheduled_new_reqs", []) or []:
            st = self._requests.get(new.req_id)
            if st is None:  # never asked about (no connector lookup): save only
                st = _Request(new.req_id, list(new.prompt_token_ids or []))
                self._requests[new.req_id] = st
            st.block_ids = _first_group(new.block_ids)
            self._plan_save(st, new.num_computed_tokens, num_scheduled.get(new.req_id, 0), meta)
        cached = getattr(scheduler_output, "scheduled_cached_reqs", None)
        if cached is not None:
            resumed = set(getattr(cached, "resumed_req_ids", ()) or ())
            for i, req_id in enumerate(cached.req_ids):
                st = self._requests.get(req_id)
                if st is None:
                    continue
                new_ids = cached.new_block_ids[i]
                if new_ids is not None:
                    ids = _first_group(new_ids)
                    st.block_ids = ids if req_id in resumed else st.block_ids + ids
                self._plan_save(st, cached.num_computed_tokens[i], num_scheduled.get(req_id, 0),
                                meta)
        return meta

    def update_connector_output(self, connector_output: Any) -> None:
        return None

    def request_finished(self, request: Any, block_ids: Any):
        st = self._requests.pop(request.request_id, None)
        if st is None:
            return False, None
        params = None
        if st.handoff_out:
            params = {
                "do_remote_prefill": True,
                "do_remote_decode": False,
                "kvstore_store": self.config.store,
                "kvstore_namespace": self._namespace,
                "kvstore_num_blocks": max(st.saved_blocks, 0),
                "kvstore_block_size": self.config.block_size,
                "remote_request_id": st.req_id,
            }
            node = self.client.store_node  # the local placement: the node saves went to
            if node:
                params["remote_store_node"] = node
        # Saves run in the workers' background senders: keep the blocks until
        # the workers report the request in their finished-sending set.
        return st.saves_issued, params

    def take_events(self):
        return ()

    def shutdown(self):
        if self._client is not None:
            self._client.close()
            self._client = None
