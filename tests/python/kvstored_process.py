"""Starts the real kvstored for Python tests: 127.0.0.1, free ports, a temp data dir.

The daemon gets SIGKILL if the test process dies (PR_SET_PDEATHSIG), so a
crashed test run leaves no daemon behind.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def kvstored_path() -> str:
    path = os.environ.get("KVSTORED")
    if not path or not os.path.exists(path):
        raise RuntimeError("set KVSTORED to the kvstored binary of the build (ctest does this); "
                           f"got {path!r}")
    return path


class Kvstored:
    def __init__(self, *extra_args: str):
        self.dir = tempfile.mkdtemp(prefix="kvstore-pytest-")
        self.port = free_port()
        self.metrics_port = free_port()
        self.log_path = os.path.join(self.dir, "kvstored.log")
        args = [kvstored_path(), "--listen", f"127.0.0.1:{self.port}", "--metrics",
                f"127.0.0.1:{self.metrics_port}", "--data-dir", os.path.join(self.dir, "data"),
                "--no-mlock", *extra_args]
        os.makedirs(os.path.join(self.dir, "data"))
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kvstored exited at start ({self.proc.returncode}): {self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"kvstored did not accept connections within 20 s: {self.log()}")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
