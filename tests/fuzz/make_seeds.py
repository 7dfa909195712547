#!/usr/bin/env python3
"""Regenerates the checked-in seed corpora under tests/fuzz/corpus/<target>/.

Run from anywhere: python3 tests/fuzz/make_seeds.py. Needs the `capnp` tool
(Debian package capnproto) for the wire_request seeds. Seeds are valid inputs
of each decoder (plus a few near misses) so fuzzing starts past the checks a
random byte string fails first.
"""
import json
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCHEMA = os.path.join(ROOT, "schema", "kvstore.capnp")
MAGIC = 0x3153564B


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def frame(control, bulk=0):
    return struct.pack("<IIQ", MAGIC, len(control), bulk) + control


def region(addr, rkey, length, version=1):
    return struct.pack("<BBHIQQ", version, 0, 0, rkey, addr, length)


def qp(port=1, gid_index=0, mtu=3, lid=7, rd=1, qpn=0x123, psn=0xabc, gid=bytes(16)):
    return struct.pack("<BBBBHBBII", 1, port, gid_index, mtu, lid, rd, 0, qpn, psn) + gid


def spill(segment, offset, stored, size, checksum=0x1234, layout=b"llama/f32", producer=b"p0"):
    return (struct.pack("<BQQQQQQQ", 1, segment, offset, stored, size, checksum, 1700000000000, 0)
            + struct.pack("<I", len(layout)) + layout + struct.pack("<I", len(producer)) + producer)


def capnp_encode(text):
    return subprocess.run(["capnp", "encode", SCHEMA, "Request"], input=text.encode(),
                          capture_output=True, check=True).stdout


def main():
    # frame_header: header | optional u64 max_bulk
    put("frame_header", "valid", struct.pack("<IIQ", MAGIC, 64, 0))
    put("frame_header", "bulk", struct.pack("<IIQQ", MAGIC, 8, 4096, 1 << 20))
    put("frame_header", "bad_magic", struct.pack("<IIQ", 0, 64, 0))
    put("frame_header", "odd_control", struct.pack("<IIQ", MAGIC, 12, 0))

    key = "\"" + "".join("\\x%02x" % i for i in range(32)) + "\""
    desc = region(0x7f0000001000, 0x42, 1 << 20)
    desc_text = "\"" + "".join("\\x%02x" % b for b in desc) + "\""
    qp_text = "\"" + "".join("\\x%02x" % b for b in qp()) + "\""
    reqs = {
        "hello": f'(id = 1, hello = (protocolVersion = 1, token = "t", clientName = "c", rdmaParams = {qp_text}))',
        "insert": f'(id = 2, insert = (key = {key}, meta = (size = 4096, checksum = 7, layout = "l", producer = "p"), ttlMs = 1000, checksumTrailer = true))',
        "insert_pull": f'(id = 3, insert = (key = {key}, meta = (size = 4096), source = (region = 0, offset = 0, length = 4096, descriptor = {desc_text})))',
        "select": f'(id = 4, select = (keys = [{key}, {key}], timeoutMs = 10))',
        "drop_select": f'(id = 5, dropSelect = (keys = [{key}], destinations = [(region = 9, offset = 16, length = 4096)]))',
        "match_prefix": f'(id = 6, matchPrefix = (keys = [{key}]))',
        "remove": f'(id = 7, remove = (keys = [{key}]))',
        "stats": '(id = 8, stats = void)',
        "list": f'(id = 9, list = (cursor = {key}, limit = 10, tierFilter = 1, prefix = "\\x01"))',
        "ping": '(id = 10, ping = void)',
        "ack": '(id = 11, ackDelivery = 5)',
        "retain": f'(id = 12, retain = (keys = [{key}]))',
        "register": f'(id = 13, registerRegion = (id = 9, descriptor = {desc_text}))',
        "unregister": '(id = 14, unregisterRegion = 9)',
    }
    for name, text in reqs.items():
        put("wire_request", name, frame(capnp_encode(text)))

    put("remote_region", "valid", region(0x1000, 5, 4096))
    put("remote_region", "with_range", region(0x1000, 5, 4096) + struct.pack("<QQ", 100, 200))
    put("remote_region", "near_overflow", region(2**64 - 4096, 5, 4095) + struct.pack("<QQ", 1, 4094))
    put("remote_region", "bad_version", region(0x1000, 5, 4096, version=2))

    put("qp_params", "lid", qp())
    put("qp_params", "gid", qp(lid=0, gid=bytes([0xfe, 0x80] + [0] * 13 + [1]), mtu=5, rd=16))
    put("qp_params", "bad_mtu", qp(mtu=9))

    put("spill_record", "valid", spill(3, 8192, 8192, 5000))
    put("spill_record", "empty_strings", spill(1, 0, 4096, 0, layout=b"", producer=b""))
    put("spill_record", "trailing", spill(1, 0, 4096, 4096) + b"\x00\x01")
    put("spill_record", "truncated", spill(1, 0, 4096, 4096)[:30])

    # spill_segment: u32 segment size | record
    put("spill_segment", "inside", struct.pack("<I", 16384) + spill(1, 4096, 8192, 5000))
    put("spill_segment", "past_end", struct.pack("<I", 8192) + spill(1, 4096, 8192, 5000))
    put("spill_segment", "other_segment", struct.pack("<I", 8192) + spill(2, 0, 4096, 10))
    put("spill_segment", "tail", struct.pack("<I", 4096 + 100) + spill(1, 4096, 4096, 100))

    put("config_file", "toml", b'listen = "127.0.0.1:7070"\nmemory = "4GiB"\nspill = "100GiB"\n'
        b'data-dir = "/var/lib/kvstore"\nttl = "10m"\nio-threads = 4\nno-mlock = true\n')
    put("config_file", "ini", b'[default]\nmemory=512MiB\nstall-timeout=30s\nlog-level=debug\n')
    put("config_file", "size", b"1.5GiB")
    put("config_file", "duration", b"250ms")
    put("config_file", "hostport", b"[::1]:8080")

    def safetensors(header, data):
        h = json.dumps(header).encode()
        return struct.pack("<Q", len(h)) + h + data
    put("safetensors", "f32", safetensors(
        {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}, bytes(16)))
    put("safetensors", "mixed", safetensors(
        {"__metadata__": {"format": "pt"},
         "a": {"dtype": "F16", "shape": [3], "data_offsets": [0, 6]},
         "b": {"dtype": "BF16", "shape": [1, 2], "data_offsets": [6, 10]},
         "c": {"dtype": "I64", "shape": [1], "data_offsets": [10, 18]}}, bytes(18)))
    put("safetensors", "scalar", safetensors(
        {"s": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}}, bytes(4)))

    body = json.dumps({"prompt": [1, 2, 3], "max_tokens": 4, "temperature": 0.5, "top_k": 3,
                       "seed": 9, "stream": True, "kv_transfer_params": {"remote_prefill": False}})
    put("http_request", "post", ("POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                                 "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(body), body)).encode())
    chunked = '{"prompt": "hello", "ignore_eos": true}'
    put("http_request", "chunked", ("POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                                    "Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
                                    % (len(chunked), chunked)).encode())
    put("http_request", "get", b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    put("http_request", "json_only", b'{"prompt": [5], "max_tokens": 1}')


if __name__ == "__main__":
    sys.exit(main())
