"""Starts the real kvstored for Python tests: 127.0.0.1, a temp data dir, and a port
the daemon picks itself (--listen 127.0.0.1:0; the port is read from its
"serving on" log line), so concurrent test runs cannot race for a port.

The daemon gets SIGKILL if the test process dies (PR_SET_PDEATHSIG), so a
crashed test run leaves no daemon behind.
"""

from __future__ import annotations

import ctypes
import os
import re
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


def stop_process(proc: subprocess.Popen, log, directory: str) -> None:
    """SIGTERM, then SIGKILL after 10 s; closes its log and removes its temp dir."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.close()
    shutil.rmtree(directory, ignore_errors=True)


def kvstored_path() -> str:
    path = os.environ.get("KVSTORED")
    if not path or not os.path.exists(path):
        raise RuntimeError("set KVSTORED to the kvstored binary of the build (ctest does this); "
                           f"got {path!r}")
    return path


class Kvstored:
    def __init__(self, *extra_args: str, start_timeout: float = 60.0):
        self.dir = tempfile.mkdtemp(prefix="kvstore-pytest-")
        self.port = 0
        self.log_path = os.path.join(self.dir, "kvstored.log")
        args = [kvstored_path(), "--listen", "127.0.0.1:0", "--metrics", "",
                "--data-dir", os.path.join(self.dir, "data"), "--no-mlock", *extra_args]
        os.makedirs(os.path.join(self.dir, "data"))
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)
        # The arena is pre-faulted before the daemon listens: on a loaded machine that takes a while.
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kvstored exited at start ({self.proc.returncode}): {self.log()}")
            m = re.search(r"serving on 127\.0\.0\.1:(\d+)", self.log())
            if m:
                self.port = int(m.group(1))
                socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
                return
            time.sleep(0.02)
        log = self.log()
        self.stop()
        raise RuntimeError(f"kvstored did not start serving within {start_timeout} s: {log}")

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
        stop_process(self.proc, self._log, self.dir)
