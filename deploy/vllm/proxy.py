#!/usr/bin/env python3
"""Minimal 1-prefill-1-decode proxy for vLLM's OpenAI API with KVStoreConnector.

POST /v1/completions or /v1/chat/completions:
 1. to prefill with max_tokens=1 and kv_transfer_params={"do_remote_decode": true};
 2. to decode with the kv_transfer_params prefill returned; decode's answer is
    returned to the client (streaming is passed through).
Standard library only. NOT RUN HERE (no vLLM, no GPU): see README.md.
"""

import argparse
import http.server
import json
import urllib.request


def post(url: str, body: dict, stream: bool = False):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(req, timeout=600)


class Handler(http.server.BaseHTTPRequestHandler):
    prefill = decode = ""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        first = dict(body, max_tokens=1, stream=False,
                     kv_transfer_params={"do_remote_decode": True})
        first.pop("max_completion_tokens", None)
        first.pop("stream_options", None)
        with post(self.prefill + self.path, first) as r:
            params = json.loads(r.read()).get("kv_transfer_params")
        second = dict(body, kv_transfer_params=params)
        with post(self.decode + self.path, second) as r:
            self.send_response(r.status)
            for k, v in r.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Connection", "close")
            self.end_headers()
            while chunk := r.read(64 * 1024):
                self.wfile.write(chunk)
                self.wfile.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--prefill", default="http://127.0.0.1:8100")
    ap.add_argument("--decode", default="http://127.0.0.1:8200")
    ap.add_argument("--port", type=int, default=8000)
    a = ap.parse_args()
    Handler.prefill, Handler.decode = a.prefill.rstrip("/"), a.decode.rstrip("/")
    http.server.ThreadingHTTPServer(("0.0.0.0", a.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
