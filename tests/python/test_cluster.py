"""The Python client and the vLLM connector over a kvstore cluster: a real etcd
and two kvstored nodes. A producer under the ``local`` placement stores on its
own node and says which (kv_transfer_params.remote_store_node); a consumer
under the ``hash`` placement reads from that node (node=) in one hop."""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

import pytest
import torch

import kvstore
from kvstored_process import Kvstored, _die_with_parent, free_port, stop_process
from vllm_harness import MiniEngine, Request, Shape, expected_block

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
NAME = "pytest"

pytestmark = pytest.mark.skipif(
    not os.access(ETCD, os.X_OK),
    reason="etcd is not installed (deploy/install-deps.sh installs etcd-server)")


class Etcd:
    """etcd on free loopback ports in a temp dir; stopped by stop()."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="kvstore-pytest-etcd-")
        self.port = free_port()
        peer = f"http://127.0.0.1:{free_port()}"
        client = f"http://127.0.0.1:{self.port}"
        self._log = open(os.path.join(self.dir, "etcd.log"), "wb")
        self.proc = subprocess.Popen(
            [ETCD, "--name", "pytest", "--data-dir", os.path.join(self.dir, "data"),
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"pytest={peer}", "--log-level", "warn"],
            stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{client}/health", timeout=1) as r:
                    if b'"true"' in r.read():
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("etcd did not come up")

    def members(self) -> list[str]:
        """Addresses of the kvstored members registered under NAME."""
        prefix = f"/kvstore/{NAME}/members/".encode()
        end = prefix[:-1] + bytes([prefix[-1] + 1])
        body = json.dumps({"key": base64.b64encode(prefix).decode(),
                           "range_end": base64.b64encode(end).decode()}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/v3/kv/range", data=body)
        with urllib.request.urlopen(req, timeout=5) as r:
            kvs = json.loads(r.read()).get("kvs", [])
        return [json.loads(base64.b64decode(kv["value"]))["address"] for kv in kvs]

    def url(self, query: str = "") -> str:
        return f"etcd://127.0.0.1:{self.port}/{NAME}" + (f"?{query}" if query else "")

    def stop(self):
        stop_process(self.proc, self._log, self.dir)


@pytest.fixture(scope="module")
def cluster():
    etcd = Etcd()
    nodes = [Kvstored("--cluster", etcd.url(), "--cluster-lease-ttl", "2s", "--memory", "64MiB")
             for _ in range(2)]
    deadline = time.monotonic() + 30
    while sorted(etcd.members()) != sorted(n.address for n in nodes):
        assert time.monotonic() < deadline, f"members in etcd: {etcd.members()}"
        time.sleep(0.05)
    yield etcd, nodes
    for n in nodes:
        n.stop()
    etcd.stop()


def keys(n: int, seed: int) -> list[bytes]:
    return kvstore.block_keys("pytest/cluster", 16, list(range(seed, seed + 16 * n)))


def entries(c: kvstore.Client) -> int:
    return sum(t.entries for t in c.stats().tiers)


def test_local_placement_stores_on_its_node_and_node_reads_from_it(cluster):
    etcd, (a, b) = cluster
    producer = kvstore.Client(etcd.url(f"placement=local&node={a.address}"))
    consumer = kvstore.Client(etcd.url())  # hash placement
    direct_a, direct_b = kvstore.Client(a.address), kvstore.Client(b.address)
    try:
        assert producer.store_node == a.address
        assert consumer.store_node is None and direct_a.store_node is None
        ks = keys(24, 1000)
        vals = [bytes([i]) * (100 + i) for i in range(len(ks))]
        assert producer.insert_many(ks, vals) == [True] * len(ks)
        # Every key is on the producer's node, none on the other.
        assert direct_a.match_prefix(ks) == len(ks)
        assert direct_b.match_prefix(ks) == 0
        # Told the node, the consumer finds all of them there; named the other
        # node, it finds none (so the call went where node= said).
        assert consumer.match_prefix(ks, node=a.address) == len(ks)
        assert consumer.match_prefix(ks, node=b.address) == 0
        with pytest.raises(kvstore.NotFound):
            consumer.select(ks[:1], node=b.address)
        assert consumer.select(ks, node=a.address) == vals
        assert consumer.drop_select(ks, 5, node=a.address) == vals
        assert direct_a.match_prefix(ks) == 0
        # A single-node client takes its own address and refuses another node.
        direct_a.insert(ks[0], b"x")
        assert direct_a.match_prefix(ks[:1], node=a.address) == 1
        with pytest.raises(kvstore.InvalidArgument):
            direct_a.match_prefix(ks[:1], node=b.address)
        direct_a.remove(ks[:1])
    finally:
        for c in (producer, consumer, direct_a, direct_b):
            c.close()


def test_connector_handoff_reads_from_the_producers_node(cluster):
    etcd, (a, b) = cluster
    shape = Shape()
    g = torch.Generator().manual_seed(7)
    tokens = torch.randint(0, 32000, (72,), generator=g).tolist()  # 4 full blocks + 8 tokens
    prod = MiniEngine("kv_producer", etcd.url(f"placement=local&node={a.address}"),
                      first_block_id=5)
    cons = MiniEngine("kv_consumer", etcd.url(), first_block_id=40, load_timeout=10)
    direct_b = kvstore.Client(b.address)
    try:
        _, _, _, params = prod.run_request(Request("req-cluster", tokens,
                                                   {"do_remote_decode": True}))
        prod.finish_sending("req-cluster")
        assert params["remote_store_node"] == a.address
        assert entries(direct_b) == 0  # nothing went to the other node
        # The proxy passes the producer's kv_transfer_params to the consumer.
        block_ids, n_ext, _, _ = cons.run_request(
            Request("req-cluster-decode", tokens, params), max_new_tokens=2)
        assert n_ext == 64
        assert cons.load_errors == set()
        assert min(cons.computed_positions) == 64  # nothing loaded was recomputed
        for layer in range(shape.layers):
            for blk in range(4):
                assert cons.block_bytes(layer, block_ids[blk]) == \
                    expected_block(tokens, blk, layer, shape)
        direct_a = kvstore.Client(a.address)
        assert entries(direct_a) == 0  # the consumer took every block
        direct_a.close()
    finally:
        direct_b.close()
        prod.close()
        cons.close()
