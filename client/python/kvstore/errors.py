"""Exceptions raised by kvstore, named by what the caller should do next.

Every error is a ``KVStoreError``; each subclass also derives from the
built-in exception a Python programmer would catch for it (``Timeout`` is a
``TimeoutError``, ``InvalidArgument`` a ``ValueError``...).
"""


class KVStoreError(Exception):
    """Base class of every kvstore error."""


class NotFound(KVStoreError, LookupError):
    """A key is not stored: insert it, or recompute the value."""


class Timeout(KVStoreError, TimeoutError):
    """The deadline passed and the operation did not happen (drop_select left the store as it was)."""


class ResourceExhausted(KVStoreError):
    """The store is full or a limit was hit: retry later, or make room."""


class InvalidArgument(KVStoreError, ValueError):
    """The call is malformed (bad key, buffer, size...): fix the call, retrying will not help."""


class Unavailable(KVStoreError, ConnectionError):
    """kvstored is unreachable, gone or shutting down: reconnect (a new Client)."""


class PermissionDenied(KVStoreError, PermissionError):
    """Authentication or a namespace check failed: check the token."""


class DataLoss(KVStoreError):
    """Bytes failed their checksum; the entry was discarded."""


class Internal(KVStoreError):
    """A bug or an unexpected system failure; the message says where."""


__all__ = [
    "KVStoreError",
    "NotFound",
    "Timeout",
    "ResourceExhausted",
    "InvalidArgument",
    "Unavailable",
    "PermissionDenied",
    "DataLoss",
    "Internal",
]
