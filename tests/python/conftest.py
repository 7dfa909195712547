import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from kvstored_process import Kvstored  # noqa: E402


@pytest.fixture(scope="module")
def daemon():
    d = Kvstored("--memory", "256MiB")
    yield d
    d.stop()


@pytest.fixture
def client(daemon):
    import kvstore

    c = kvstore.Client(daemon.address)
    yield c
    c.close()
