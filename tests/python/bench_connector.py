#!/usr/bin/env python3
"""Benchmark (not a test): save + load of a request's KV through the vLLM connector,
Llama-3-8B-shaped (32 layers, 8 KV heads, head size 128, bf16, block size 16:
64 KiB per block per layer), beside the C++ client doing the same transfers
(kvstore-transfer-bench) and the Python client alone, in interleaved rounds
against one real kvstored. Prints median and min-max GB/s of each and the
ratios to the C++ client.

  PYTHONPATH=build/client/python /usr/bin/python3 tests/python/bench_connector.py \
      --kvstored build/server/kvstored --cpp-bench build/tests/python/kvstore-transfer-bench
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import kvstore  # noqa: E402
from kvstored_process import Kvstored  # noqa: E402
from vllm_harness import (KVCacheBlocks, KVConnectorRole, NewRequestData, Request,  # noqa: E402
                          SchedulerOutput, Shape, layer_name, make_config)
from kvstore.vllm import KVStoreConnector  # noqa: E402


def connector_round(store: str, shape: Shape, blocks: int, rnd: int, kv_src, kv_dst, threads: int):
    """One request: a producer saves every layer, a consumer (other connector
    instances, other block ids) loads it by handoff. Returns (save_s, load_s)."""
    prod_cfg = make_config("kv_producer", store, shape, send_threads=threads)
    cons_cfg = make_config("kv_consumer", store, shape, load_timeout=120)
    ps = KVStoreConnector(prod_cfg, KVConnectorRole.SCHEDULER)
    pw = KVStoreConnector(prod_cfg, KVConnectorRole.WORKER)
    cs = KVStoreConnector(cons_cfg, KVConnectorRole.SCHEDULER)
    cw = KVStoreConnector(cons_cfg, KVConnectorRole.WORKER)
    pw.register_kv_caches(kv_src)
    cw.register_kv_caches(kv_dst)
    g = torch.Generator().manual_seed(rnd)
    tokens = torch.randint(0, 128000, (blocks * shape.block_size + 1,), generator=g).tolist()
    rid = f"bench-{rnd}"
    ids = list(range(blocks + 1))
    # Producer: one prefill step over the whole prompt, saving every layer.
    req = Request(rid, tokens, {"do_remote_decode": True})
    ps.get_num_new_matched_tokens(req, 0)
    ps.update_state_after_alloc(req, KVCacheBlocks(ids), 0)
    so = SchedulerOutput(num_scheduled_tokens={rid: len(tokens)})
    so.scheduled_new_reqs.append(NewRequestData(rid, tokens, (ids,), 0))
    meta = ps.build_connector_meta(so)
    t0 = time.perf_counter()
    pw.bind_connector_metadata(meta)
    pw.start_load_kv(None)
    for i in range(shape.layers):
        pw.wait_for_layer_load(layer_name(i))
        pw.save_kv_layer(layer_name(i), kv_src[layer_name(i)], None)
    pw.wait_for_save()
    t_forward = time.perf_counter() - t0
    pw.clear_connector_metadata()
    delay, params = ps.request_finished(req, ids)
    assert delay
    sending, _ = pw.get_finished({rid})
    while not sending or rid not in sending:
        time.sleep(0.0005)
        sending, _ = pw.get_finished(set())
    t_save = time.perf_counter() - t0
    # Consumer: handoff load into the same block ids of another KV cache.
    creq = Request(rid + "-d", tokens, params)
    n_ext, is_async = cs.get_num_new_matched_tokens(creq, 0)
    assert is_async and n_ext == blocks * shape.block_size, (n_ext, is_async)
    cs.update_state_after_alloc(creq, KVCacheBlocks(ids), n_ext)
    meta = cs.build_connector_meta(SchedulerOutput())
    t1 = time.perf_counter()
    cw.bind_connector_metadata(meta)
    cw.start_load_kv(None)
    cw.wait_for_save()
    cw.clear_connector_metadata()
    while True:
        _, recving = cw.get_finished(set())
        if recving and creq.request_id in recving:
            break
        time.sleep(0.0005)
    t_load = time.perf_counter() - t1
    errors = cw.get_block_ids_with_load_errors()
    assert not errors, f"load errors {sorted(errors)}"
    for c in (pw, cw, ps, cs):
        c.shutdown()
    return t_save, t_load, t_forward


def python_client_round(store: str, shape: Shape, blocks: int, rnd: int, src, dst, threads: int):
    """The Python client alone, same keys and transfers (insert_many_from per layer,
    drop_select_into_regions per layer)."""
    from kvstore.vllm.keys import RequestKeys

    c = kvstore.Client(store)
    bb = 2 * shape.block_size * shape.heads * shape.head_size * 2
    rs, rd = c.register_region(src), c.register_region(dst)
    tokens = list(range(1, blocks * shape.block_size + 1))
    keys = RequestKeys(f"py-bench-{rnd}", shape.block_size, tokens)
    per_layer = [keys.layer_keys(l, 0, blocks) for l in range(shape.layers)]
    t0 = time.perf_counter()
    for l in range(shape.layers):
        c.insert_many_from(per_layer[l], [(rs, (l * blocks + b) * bb, bb) for b in range(blocks)],
                           layout="bench", threads=threads)
    t1 = time.perf_counter()
    for l in range(shape.layers):
        c.drop_select_into_regions(per_layer[l], [(rd, (l * blocks + b) * bb, bb)
                                                  for b in range(blocks)], 60)
    t2 = time.perf_counter()
    rs.unregister()
    rd.unregister()
    c.close()
    return t1 - t0, t2 - t1


def fmt(values):
    return f"{statistics.median(values):6.2f} GB/s (min {min(values):.2f}, max {max(values):.2f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kvstored", required=True)
    ap.add_argument("--cpp-bench", required=True, help="kvstore-transfer-bench of the build")
    ap.add_argument("--blocks", type=int, default=64, help="blocks per request (16 tokens each)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=4,
                    help="inserts in flight per layer: the connector's send_threads, and the same "
                         "for the Python and C++ clients")
    ap.add_argument("--memory", default="1GiB", help="kvstored --memory")
    args = ap.parse_args()
    os.environ["KVSTORED"] = os.path.abspath(args.kvstored)
    shape = Shape(layers=32, heads=8, head_size=128, block_size=16, num_blocks=args.blocks + 1,
                  dtype=torch.bfloat16)
    block_bytes = 2 * 16 * 8 * 128 * 2
    assert block_bytes == 64 * 1024
    total = block_bytes * shape.layers * args.blocks
    g = torch.Generator().manual_seed(0)
    kv_src = {layer_name(i): torch.randn(2, shape.num_blocks, 16, 8, 128, generator=g).to(torch.bfloat16)
              for i in range(shape.layers)}
    kv_dst = {layer_name(i): torch.zeros(2, shape.num_blocks, 16, 8, 128, dtype=torch.bfloat16)
              for i in range(shape.layers)}
    raw_src = torch.randint(0, 255, (total,), dtype=torch.uint8, generator=g)
    raw_dst = torch.zeros(total, dtype=torch.uint8)
    d = Kvstored("--memory", args.memory, "--spill", "0")
    res = {"connector": ([], []), "python": ([], []), "cpp": ([], [])}
    forward = []
    print(f"kvstore connector benchmark: {args.blocks} blocks x {shape.layers} layers x 64 KiB = "
          f"{total / 2**20:.0f} MiB per request, {args.rounds} interleaved rounds, "
          f"{args.threads} inserts in flight, kvstored "
          f"--memory {args.memory}, one host (loopback)")
    try:
        for r in range(args.rounds):
            s, l, f = connector_round(d.address, shape, args.blocks, r, kv_src, kv_dst,
                                      args.threads)
            res["connector"][0].append(total / s / 1e9)
            res["connector"][1].append(total / l / 1e9)
            forward.append(f)
            if r == 0:
                for i in (0, shape.layers - 1):  # the loaded blocks equal the saved ones
                    n = layer_name(i)
                    assert torch.equal(kv_dst[n][:, :args.blocks], kv_src[n][:, :args.blocks])
            s, l = python_client_round(d.address, shape, args.blocks, r, raw_src, raw_dst,
                                       args.threads)
            res["python"][0].append(total / s / 1e9)
            res["python"][1].append(total / l / 1e9)
            out = subprocess.run([args.cpp_bench, "--address", d.address, "--namespace",
                                  f"cpp-bench-{r}", "--blocks", str(args.blocks), "--layers",
                                  str(shape.layers), "--block-bytes", str(block_bytes),
                                  "--threads", str(args.threads)],
                                 check=True, capture_output=True, text=True).stdout
            j = json.loads(out)
            res["cpp"][0].append(j["bytes"] / j["save_s"] / 1e9)
            res["cpp"][1].append(j["bytes"] / j["load_s"] / 1e9)
            print(f"  round {r}: connector save {res['connector'][0][-1]:.2f} load "
                  f"{res['connector'][1][-1]:.2f} | python client save {res['python'][0][-1]:.2f} "
                  f"load {res['python'][1][-1]:.2f} | C++ client save {res['cpp'][0][-1]:.2f} "
                  f"load {res['cpp'][1][-1]:.2f} GB/s")
    finally:
        d.stop()
    print("\nmedian (min-max) over rounds, GB/s of KV moved (1 GB = 1e9 bytes):")
    for name, label in (("connector", "vLLM connector (KVStoreConnector)"),
                        ("python", "Python client (regions)"), ("cpp", "C++ client (regions)")):
        print(f"  {label:36s} save {fmt(res[name][0])}   load {fmt(res[name][1])}")
    cs, cl = statistics.median(res["cpp"][0]), statistics.median(res["cpp"][1])
    print(f"\nratio to the C++ client (medians): connector save "
          f"{statistics.median(res['connector'][0]) / cs:.2f}, load "
          f"{statistics.median(res['connector'][1]) / cl:.2f}; Python client save "
          f"{statistics.median(res['python'][0]) / cs:.2f}, load "
          f"{statistics.median(res['python'][1]) / cl:.2f}")
    print(f"connector time inside the forward pass (32 save_kv_layer copies + wait_for_save): "
          f"median {statistics.median(forward) * 1e3:.1f} ms per request "
          f"(min {min(forward) * 1e3:.1f}, max {max(forward) * 1e3:.1f})")


if __name__ == "__main__":
    main()
