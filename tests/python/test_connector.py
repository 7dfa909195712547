"""kvstore.vllm.KVStoreConnector driven through vLLM's call order against a real kvstored."""

import multiprocessing as mp
import os
import threading

import pytest
import torch

import kvstore
from kvstore.vllm import RequestKeys
from vllm_harness import (KVCacheBlocks, MiniEngine, Request, SchedulerOutput, Shape,
                          expected_block, layer_name)

SHAPE = Shape()


def prompt(n: int, seed: int = 0) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 32000, (n,), generator=g).tolist()


def namespace(engine: MiniEngine) -> str:
    return engine.worker.config.namespace()


def layer_keys(ns: str, tokens, layer: int, first: int, end: int):
    return RequestKeys(ns, SHAPE.block_size, tokens).layer_keys(layer, first, end)


def stored_keys_of(client: kvstore.Client, ns: str, tokens, n_blocks: int) -> int:
    """How many of the request's per-layer block keys the store holds."""
    n = 0
    for layer in range(SHAPE.layers):
        for k in layer_keys(ns, tokens, layer, 0, n_blocks):
            n += client.match_prefix([k])
    return n


def test_imports_without_vllm():
    import kvstore.vllm as kv

    assert not kv.HAVE_VLLM  # vLLM is not installed on these machines
    assert kv.KVStoreConnector.get_required_kvcache_layout(None) == "NHD"


def test_namespace_names_model_layout_dtype_rank(daemon):
    a = MiniEngine("kv_both", daemon.address)
    ns = namespace(a)
    assert "toy-llama" in ns and "bfloat16" in ns and "L4" in ns and "kv2" in ns
    assert "d32" in ns and "b16" in ns and "tp1.0" in ns
    # Another dtype gives other keys: KV of a float16 model is never served to a bf16 one.
    b = MiniEngine("kv_both", daemon.address, Shape(dtype=torch.float16))
    assert namespace(b) != ns
    tokens = prompt(32)
    assert layer_keys(ns, tokens, 0, 0, 2) != layer_keys(namespace(b), tokens, 0, 0, 2)
    a.close()
    b.close()


def test_one_step_saves_every_layer_and_frees_only_after_save(daemon):
    """A producer step: saves per layer go to a background sender; request_finished
    delays freeing until get_finished reports the saves done."""
    gate = threading.Event()

    class GatedClient(kvstore.Client):
        def insert_many_from(self, *a, **kw):
            gate.wait()  # the network is slow: the sender waits here
            return super().insert_many_from(*a, **kw)

    eng = MiniEngine("kv_producer", daemon.address,
                     client_factory=lambda: GatedClient(daemon.address))
    req = Request("req-one-step", prompt(40, 1), {"do_remote_decode": True})
    n_ext, is_async = eng.scheduler.get_num_new_matched_tokens(req, 0)
    assert (n_ext, is_async) == (0, False)
    blocks = eng.allocate(3)
    eng.scheduler.update_state_after_alloc(req, KVCacheBlocks(blocks), 0)
    so = SchedulerOutput(num_scheduled_tokens={req.request_id: 40})
    from vllm_harness import NewRequestData
    so.scheduled_new_reqs.append(NewRequestData(req.request_id, req.prompt_token_ids, (blocks,), 0))
    meta = eng.scheduler.build_connector_meta(so)
    assert [(s.first_block, s.end_block, s.handoff) for s in meta.saves] == [(0, 2, True)]
    assert meta.loads == []
    # The forward pass runs to the end although no save has reached the store.
    eng.worker_step(so, meta, [(req, blocks, 0, 40)])
    delay, params = eng.scheduler.request_finished(req, blocks)
    assert delay is True
    assert params["do_remote_prefill"] is True and params["kvstore_num_blocks"] == 2
    assert params["kvstore_namespace"] == namespace(eng)
    for _ in range(5):  # steps pass, the saves are still held: nothing may be freed
        eng.idle_step({req.request_id})
        assert req.request_id not in eng.finished_sending
    gate.set()
    eng.finish_sending(req.request_id)
    c = kvstore.Client(daemon.address)
    assert stored_keys_of(c, namespace(eng), req.prompt_token_ids, 2) == 2 * SHAPE.layers
    for layer in range(SHAPE.layers):  # what was stored is the layer's blocks, K then V
        vals = c.select(layer_keys(namespace(eng), req.prompt_token_ids, layer, 0, 2))
        for b in range(2):
            assert vals[b] == expected_block(req.prompt_token_ids, b, layer, SHAPE)
    c.remove([k for layer in range(SHAPE.layers)
              for k in layer_keys(namespace(eng), req.prompt_token_ids, layer, 0, 2)])
    c.close()
    eng.close()


def _producer(store: str, tokens, out: "mp.Queue"):
    """Prefill instance in its own process: one request with do_remote_decode, chunked."""
    import sys
    sys.path.insert(0, os.path.dirname(__file__))
    from vllm_harness import MiniEngine, Request

    eng = MiniEngine("kv_producer", store, first_block_id=5)
    req = Request("req-handoff", tokens, {"do_remote_decode": True})
    block_ids, n_ext, delay, params = eng.run_request(req, chunk=24)
    freed_before = list(eng.freed)
    eng.finish_sending(req.request_id)
    blocks = {(layer, b): eng.block_bytes(layer, block_ids[b])
              for layer in range(eng.shape.layers) for b in range(len(tokens) // 16)}
    eng.close()
    out.put({"params": params, "delay": delay, "freed_before": freed_before,
             "block_ids": block_ids, "blocks": blocks})


def test_handoff_producer_and_consumer_in_two_processes(daemon):
    tokens = prompt(72, 2)  # 4 full blocks + 8 tokens
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_producer, args=(daemon.address, tokens, q))
    # The consumer starts first: its drop_select waits for the producer's saves.
    cons = MiniEngine("kv_consumer", daemon.address, first_block_id=40, load_timeout=60)
    p.start()
    # The proxy would pass the producer's kv_transfer_params; the consumer can
    # compute them itself (same namespace) to start before the producer answers.
    req = Request("req-handoff-decode", tokens,
                  {"do_remote_prefill": True, "kvstore_num_blocks": 4,
                   "kvstore_namespace": cons.scheduler.config.namespace(0)})
    block_ids, n_ext, delay, params = cons.run_request(req, max_new_tokens=2)
    res = q.get(timeout=120)
    p.join(timeout=60)
    assert p.exitcode == 0
    assert res["delay"] is True and res["freed_before"] == []
    assert res["params"]["kvstore_num_blocks"] == 4
    assert res["params"]["kvstore_namespace"] == req.kv_transfer_params["kvstore_namespace"]
    assert n_ext == 64  # 4 blocks loaded, the 8-token tail and the new token computed
    assert set(block_ids).isdisjoint(res["block_ids"])  # different block ids
    assert cons.load_errors == set()
    assert min(cons.computed_positions) == 64  # nothing loaded was recomputed
    for layer in range(SHAPE.layers):
        for b in range(4):
            got = cons.block_bytes(layer, block_ids[b])
            assert got == res["blocks"][(layer, b)]
            assert got == expected_block(tokens, b, layer, SHAPE)
    # The consumer took everything: the store holds nothing of the request.
    c = kvstore.Client(daemon.address)
    assert stored_keys_of(c, namespace(cons), tokens, 4) == 0
    c.close()
    cons.close()


def test_stored_prefix_is_matched_and_loaded_not_recomputed(daemon):
    a = MiniEngine("kv_both", daemon.address, first_block_id=0)
    shared = prompt(48, 3)  # 3 full blocks
    ra = Request("req-prefix-a", shared + prompt(5, 4))
    a.run_request(ra)
    a.finish_sending(ra.request_id)
    b = MiniEngine("kv_both", daemon.address, first_block_id=30)
    rb = Request("req-prefix-b", shared + prompt(20, 5))
    assert b.scheduler.get_num_new_matched_tokens(rb, 0) == (48, False)
    assert b.scheduler.get_num_new_matched_tokens(rb, 16) == (32, False)  # local hit of 1 block
    block_ids, n_ext, _, _ = b.run_request(rb)
    assert n_ext == 48
    assert b.load_errors == set()
    assert min(b.computed_positions) == 48
    for layer in range(SHAPE.layers):
        for blk in range(3):
            assert b.block_bytes(layer, block_ids[blk]) == expected_block(rb.prompt_token_ids, blk,
                                                                          layer, SHAPE)
    # Prefix-cache loads use select: the entries stay for the next request.
    c = kvstore.Client(daemon.address)
    assert stored_keys_of(c, namespace(a), shared, 3) == 3 * SHAPE.layers
    c.close()
    a.close()
    b.close()


def test_missing_and_corrupt_blocks_are_reported(daemon):
    a = MiniEngine("kv_both", daemon.address)
    tokens = prompt(64, 6)  # 4 full blocks
    ra = Request("req-err-a", tokens + [7])
    a.run_request(ra)
    a.finish_sending(ra.request_id)
    ns = namespace(a)
    c = kvstore.Client(daemon.address)
    # Block 1 of layer 2 disappears; block 2 of layer 1 is replaced by garbage of another size.
    assert c.remove(layer_keys(ns, tokens, 2, 1, 2)) == 1
    bad = layer_keys(ns, tokens, 1, 2, 3)
    assert c.remove(bad) == 1
    assert c.insert(bad[0], b"not a KV block", layout=a.worker.config.layout)
    b = MiniEngine("kv_both", daemon.address, first_block_id=20)
    rb = Request("req-err-b", tokens + [8, 9])
    block_ids, n_ext, _, _ = b.run_request(rb)
    assert n_ext == 64  # first and last layers are complete: the prefix is offered
    assert b.load_errors == {block_ids[1], block_ids[2]}
    # The blocks that did load are right.
    assert b.block_bytes(0, block_ids[1]) == expected_block(tokens, 1, 0, SHAPE)
    assert b.block_bytes(3, block_ids[3]) == expected_block(tokens, 3, 3, SHAPE)
    c.close()
    a.close()
    b.close()


def test_handoff_that_never_arrives_reports_every_block(daemon):
    cons = MiniEngine("kv_consumer", daemon.address, load_timeout=0.2)
    tokens = prompt(40, 7)
    req = Request("req-lost", tokens, {"do_remote_prefill": True, "kvstore_num_blocks": 2})
    block_ids, n_ext, _, _ = cons.run_request(req)
    assert n_ext == 32
    # The request is reported received (so vLLM does not wait forever) with its
    # blocks in the load-error set (vLLM's recompute/fail policy takes over).
    assert req.request_id in cons.finished_recving
    assert cons.load_errors == set(block_ids[:2])
    cons.close()


def test_handoff_of_a_prefix_already_stored_is_retained(daemon):
    """Two handoffs of the same prompt: the second producer's inserts find the
    blocks stored and retain them, so both consumers get their KV."""
    tokens = prompt(32, 8)
    prods = [MiniEngine("kv_producer", daemon.address, first_block_id=i * 10) for i in range(2)]
    for i, p in enumerate(prods):
        r = Request(f"req-dup-{i}", tokens, {"do_remote_decode": True})
        p.run_request(r)
        p.finish_sending(r.request_id)
    for i in range(2):
        cons = MiniEngine("kv_consumer", daemon.address, first_block_id=30, load_timeout=5)
        r = Request(f"req-dup-dec-{i}", tokens, {"do_remote_prefill": True, "kvstore_num_blocks": 2})
        block_ids, n_ext, _, _ = cons.run_request(r, max_new_tokens=2)
        assert cons.load_errors == set()
        assert cons.block_bytes(2, block_ids[1]) == expected_block(tokens, 1, 2, SHAPE)
        cons.close()
    c = kvstore.Client(daemon.address)
    assert stored_keys_of(c, namespace(prods[0]), tokens, 2) == 0
    c.close()
    for p in prods:
        p.close()
