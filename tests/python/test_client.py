"""kvstore.Client against the real kvstored: round trips, blocking, regions, errors."""

import os
import threading
import time

import numpy as np
import pytest
import torch

import kvstore
from kvstored_process import Kvstored, free_port

NS = "llama-tiny/f32/L4/kv2/d32/b16/v1"


def keys_for(name: str, n: int = 1, block: int = 4):
    """Distinct keys per test (module-scoped daemon)."""
    return kvstore.block_keys(f"pytest/{name}", block, list(range(n * block)))


def eventually(cond, what: str, timeout: float = 20.0):
    """Polls `cond` (a correctness wait, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


# ---- keys: the fixed vectors of tests/client/key_test.cc ----

def test_keys_equal_cpp_vectors():
    assert kvstore.namespace_seed("").hex() == \
        "65b4fc2d2678a8fe40b3a3f47a7bf70bcccc0522400bd3c97379262da0f24d55"
    assert kvstore.namespace_seed(NS).hex() == \
        "66a6005020d4a6aaa94f6412b2ac94f4a51ef3c72aeb3e72e7daaf786b6cfed2"
    keys = kvstore.block_keys(NS, 16, list(range(1, 41)))
    assert [k.hex() for k in keys] == [
        "f424427033f8d83728791034b512b534f0823fa681f996515e4d00c96248f55e",
        "60a12ed7a61b18fd0427816654523dbbdd7463a00493c5be0bddcece44f7020d",
    ]
    assert [k.hex() for k in kvstore.block_keys("", 4, [0, 4294967295, 7, 65536])] == [
        "c6151e834b6d02e9fa597f5c26b7575d11e1aaf3e5fd0c46a265d088ec2371bf"]
    assert kvstore.chain_key(kvstore.namespace_seed(NS), [1, 2, 3, 4], 4, b"layer=3").hex() == \
        "47e18eaf607965a86087c3e737fe73eb743941e2da1cebbaf35069d01b319b7c"
    assert kvstore.namespace_seed(NS, hash="xxh3").hex() == \
        "8f77adcac3e267357c61f5ca21c917d776bf152d17592bde76cf9dc8b21212a5"
    assert [k.hex() for k in kvstore.block_keys(NS, 16, list(range(1, 33)), hash="xxh3")] == [
        "b6c6d8fc30879671861f801bfac8ac6d069f275ea9b896238f959125e0ba3709",
        "b7e40fe588ae47ae91fd3b9cc3449a6d61c7fbda237e302bf59406a0633648e0",
    ]


def test_keys_from_arrays_and_chaining():
    tokens = list(range(1, 41))
    ref = kvstore.block_keys(NS, 16, tokens)
    assert kvstore.block_keys(NS, 16, np.arange(1, 41, dtype=np.int64)) == ref
    assert kvstore.block_keys(NS, 16, np.arange(1, 41, dtype=np.uint32)) == ref
    assert kvstore.block_keys(NS, 16, torch.arange(1, 41).numpy()) == ref
    # block_keys is chain_key applied block after block.
    h = kvstore.namespace_seed(NS)
    for i, k in enumerate(ref):
        h = kvstore.chain_key(h, tokens[16 * i:16 * (i + 1)], 16)
        assert h == k
    parents = [kvstore.namespace_seed(NS), ref[0]]
    assert kvstore.chain_keys(parents, tokens[:32], 16) == ref
    assert kvstore.block_keys(NS, 16, list(range(15))) == []
    with pytest.raises(kvstore.InvalidArgument):
        kvstore.block_keys(NS, 16, [-1] * 16)
    with pytest.raises(kvstore.InvalidArgument):
        kvstore.block_keys(NS, 0, [1])


# ---- round trips ----

def test_bytes_round_trip(client):
    k = keys_for("bytes", 2)
    v0 = bytes(range(256)) * 41
    v1 = b""
    assert client.insert(k[0], v0, layout="raw", producer="pytest") is True
    assert client.insert(k[0], v0) is False  # idempotent
    assert client.insert(k[1], bytearray(b"x" * 7)) is True
    assert client.select([k[0]]) == [v0]
    assert client.select(k) == [v0, b"x" * 7]
    info = client.show(k[0])
    assert info.key == k[0] and info.meta.size == len(v0) and info.meta.layout == "raw"
    assert info.meta.checksum == kvstore.value_checksum(v0)
    assert client.drop_select(k, timeout=5) == [v0, b"x" * 7]
    assert client.match_prefix(k) == 0
    del v1


def test_buffer_protocol_and_numpy_round_trip(client):
    k = keys_for("numpy", 4)
    rng = np.random.default_rng(7)
    arrays = [
        rng.standard_normal((16, 8, 32)).astype(np.float32),
        rng.integers(0, 2**16, size=(3, 1000), dtype=np.uint16),
        np.frombuffer(rng.bytes(4097), dtype=np.uint8),
    ]
    for key, a in zip(k, arrays):
        assert client.insert(key, a)
    client.insert(k[3], memoryview(arrays[0].tobytes())[100:300])
    got = client.select(k)
    for a, g in zip(arrays, got):
        assert g == a.tobytes()
    assert got[3] == arrays[0].tobytes()[100:300]
    # select_into writes straight into arrays of the right shape.
    out = [np.empty_like(a) for a in arrays] + [bytearray(200)]
    metas = client.select_into(k, out)
    assert [m.size for m in metas] == [a.nbytes for a in arrays] + [200]
    for a, o in zip(arrays, out):
        assert np.array_equal(a, o)
    assert bytes(out[3]) == arrays[0].tobytes()[100:300]
    # Non-contiguous arrays are refused, not silently copied.
    with pytest.raises(kvstore.InvalidArgument, match="contiguous"):
        client.insert(keys_for("numpy-strided")[0], arrays[0][:, ::2])
    assert client.remove(k) == 4


def test_torch_cpu_round_trip(client):
    k = keys_for("torch", 3)
    g = torch.Generator().manual_seed(3)
    tensors = [
        torch.randn(2, 16, 8, 128, generator=g).to(torch.bfloat16),
        torch.randn(1000, generator=g, dtype=torch.float32),
        torch.randint(0, 127, (64, 64), generator=g, dtype=torch.int8),
    ]
    for key, t in zip(k, tensors):
        assert client.insert(key, t)
    got = client.select(k)
    for t, b in zip(tensors, got):
        back = torch.frombuffer(bytearray(b), dtype=t.dtype).reshape(t.shape)
        assert torch.equal(back, t)
    outs = [torch.empty_like(t) for t in tensors]
    client.drop_select_into(k, outs, timeout=5)
    for t, o in zip(tensors, outs):
        assert torch.equal(t, o)
    assert client.match_prefix(k) == 0
    with pytest.raises(kvstore.InvalidArgument, match="contiguous"):
        client.insert(k[0], tensors[0].transpose(1, 2))


# ---- blocking and threads ----

def test_drop_select_blocks_without_holding_the_gil(client, daemon):
    k = keys_for("blocking", 2)
    value = os.urandom(100_000)
    result = {}

    def taker():
        try:
            result["values"] = client.drop_select(k, timeout=60)
        except Exception as e:  # surfaced by the assertion below
            result["error"] = e

    t = threading.Thread(target=taker)
    t.start()
    # The waiter registers in the daemon while this thread keeps running Python:
    # were the GIL held by the blocked call, this loop could not run at all.
    probe = kvstore.Client(daemon.address)
    eventually(lambda: probe.stats().waiters >= 1, "drop_select registered as a waiter")
    assert t.is_alive()
    assert client.insert(k[0], value)
    assert t.is_alive()  # still waiting for the second key
    assert client.insert(k[1], value[::-1])
    t.join(timeout=60)
    assert not t.is_alive()
    assert "error" not in result, result.get("error")
    assert result["values"] == [value, value[::-1]]
    assert probe.match_prefix(k) == 0
    probe.close()


def test_one_client_many_threads(client):
    errors = []

    def worker(i):
        try:
            ks = keys_for(f"threads-{i}", 4)
            vals = [os.urandom(1000 + j) for j in range(4)]
            for key, v in zip(ks, vals):
                client.insert(key, v)
            assert client.select(ks) == vals
            assert client.drop_select(ks, timeout=10) == vals
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# ---- registered regions ----

def test_region_round_trip_numpy_zero_copy(client):
    k = keys_for("region-np", 8)
    block = 64 * 1024
    src = np.random.default_rng(1).integers(0, 255, size=8 * block, dtype=np.uint8)
    dst = np.zeros(8 * block, dtype=np.uint8)
    before = client.transfer_stats()
    with client.register_region(src) as rs, client.register_region(dst) as rd:
        assert rs.nbytes == src.nbytes and rs.obj is src
        stored = client.insert_many_from(k[:4], [(rs, i * block, block) for i in range(4)])
        assert stored == [True] * 4
        for i in range(4, 8):
            assert client.insert_from(k[i], rs, i * block, block)
        # Into the destination in reverse order: bytes land where each slice says.
        metas = client.select_into_regions(k, [(rd, (7 - i) * block, block) for i in range(8)])
        assert all(m.size == block for m in metas)
        for i in range(8):
            assert np.array_equal(dst[(7 - i) * block:(8 - i) * block], src[i * block:(i + 1) * block])
        dst[:] = 0
        client.drop_select_into_regions(k, [(rd, i * block, block) for i in range(8)], timeout=5)
    assert np.array_equal(dst, src)  # written in place: no Python-side copy
    after = client.transfer_stats()
    assert after["registered_transfers"] - before["registered_transfers"] >= 10
    assert client.match_prefix(k) == 0


def test_region_round_trip_torch(client):
    k = keys_for("region-torch", 4)
    kv = torch.randn(2, 4, 16, 8, 64).to(torch.bfloat16)
    out = torch.zeros_like(kv)
    per = kv[:, 0].numel() * kv.element_size() // 2  # one K or V block
    r_in = client.register_region(kv)
    r_out = client.register_region(out)
    # K of block i lives at [0, i]: element offset i * block_elems in the flat tensor.
    for i in range(4):
        assert client.insert_from(k[i], r_in, i * per, per)
    client.select_into_regions(k, [(r_out, i * per, per) for i in range(4)])
    assert torch.equal(out[0], kv[0]) and torch.count_nonzero(out[1]) == 0
    r_in.unregister()
    assert not r_in.registered
    with pytest.raises(kvstore.InvalidArgument):
        client.insert_from(k[0], r_in, 0, per)
    r_out.unregister()
    client.remove(k)


def test_region_slice_checked(client):
    a = bytearray(100)
    r = client.register_region(a)
    with pytest.raises(kvstore.InvalidArgument, match="exceeds"):
        client.insert_from(keys_for("slice")[0], r, 50, 51)
    with pytest.raises(kvstore.InvalidArgument):
        client.register_region(b"read-only bytes")
    r.unregister()


# ---- admin calls ----

def test_match_retain_remove_list_stats(client):
    k = keys_for("admin", 3)
    client.insert(k[0], b"a")
    client.insert(k[1], b"b")
    assert client.match_prefix(k) == 2
    assert client.retain(k) == 2  # one more taker each
    assert client.drop_select(k[:2], timeout=5) == [b"a", b"b"]
    assert client.match_prefix(k) == 2  # the retained takers keep them
    assert client.remove(k) == 2
    assert client.match_prefix(k) == 0
    client.insert(k[2], b"c" * 10)
    s = client.stats()
    assert s.entries >= 1 and s.inserts >= 3 and s.version
    seen = []
    cursor = b""
    while True:
        page = client.list(limit=2, cursor=cursor)
        seen += [e.key for e in page.entries]
        cursor = page.next_cursor
        if not cursor:
            break
    assert k[2] in seen
    client.remove([k[2]])


# ---- errors ----

def test_errors_are_classified(client, daemon):
    missing = keys_for("missing", 2)
    with pytest.raises(kvstore.NotFound):
        client.select(missing)
    with pytest.raises(kvstore.NotFound):
        client.show(missing[0])
    with pytest.raises(kvstore.Timeout):
        client.drop_select(missing, timeout=0.05)
    with pytest.raises(kvstore.InvalidArgument, match="32 bytes"):
        client.insert(b"short", b"v")
    with pytest.raises(kvstore.InvalidArgument, match="list of keys"):
        client.select(missing[0])
    with pytest.raises(kvstore.InvalidArgument, match="one buffer per key"):
        client.select_into(missing, [bytearray(1)])
    with pytest.raises(kvstore.InvalidArgument):
        client.drop_select(missing, timeout=-1)
    k = keys_for("small-buffer")
    client.insert(k[0], b"0123456789")
    with pytest.raises(kvstore.InvalidArgument):
        client.select_into(k, [bytearray(4)])
    with pytest.raises(kvstore.InvalidArgument, match="writable"):
        client.select_into(k, [b"0" * 10])
    client.remove(k)
    # A checksum that does not match the bytes: the store refuses to keep them.
    with pytest.raises(kvstore.DataLoss, match="checksum"):
        client.insert(k[0], b"0123456789", checksum=kvstore.value_checksum(b"other bytes"))
    assert client.match_prefix(k) == 0
    # Built-in bases, so generic handlers work too.
    assert issubclass(kvstore.Timeout, TimeoutError)
    assert issubclass(kvstore.NotFound, LookupError)
    assert issubclass(kvstore.InvalidArgument, ValueError)
    assert issubclass(kvstore.Unavailable, ConnectionError)
    assert issubclass(kvstore.PermissionDenied, PermissionError)
    for cls in (kvstore.Timeout, kvstore.NotFound, kvstore.ResourceExhausted,
                kvstore.InvalidArgument, kvstore.Unavailable, kvstore.PermissionDenied,
                kvstore.DataLoss, kvstore.Internal):
        assert issubclass(cls, kvstore.KVStoreError)


def test_unavailable():
    with pytest.raises(kvstore.Unavailable):
        kvstore.Client(f"127.0.0.1:{free_port()}", connect_timeout=2)
    d = Kvstored()
    c = kvstore.Client(d.address)
    c.ping()
    d.stop()
    with pytest.raises(kvstore.Unavailable):
        c.select(keys_for("gone"))
    c.close()
    with pytest.raises(kvstore.Unavailable, match="closed"):
        c.ping()


def test_resource_exhausted():
    d = Kvstored("--memory", "8MiB", "--spill", "0")
    try:
        c = kvstore.Client(d.address)
        value = os.urandom(1 << 20)
        with pytest.raises(kvstore.ResourceExhausted):
            for i, key in enumerate(keys_for("full", 64)):
                c.insert(key, value)
                c.retain([key])  # pending takers are never evicted
        c.close()
    finally:
        d.stop()


def test_permission_denied(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    d = Kvstored("--token-file", str(token_file))
    try:
        with pytest.raises(kvstore.PermissionDenied):
            kvstore.Client(d.address, token="wrong")
        c = kvstore.Client(d.address, token="s3cret-token")
        c.ping()
        c.close()
    finally:
        d.stop()
