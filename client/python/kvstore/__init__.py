"""kvstore: Python client for kvstored, the KV-cache store for disaggregated LLM serving.

    import kvstore
    c = kvstore.Client("127.0.0.1:7400")
    keys = kvstore.block_keys("my-model/bf16/L32/kv8/d128/b16/tp1r0", 16, token_ids)
    c.insert(keys[0], numpy_array)            # bytes, buffers, NumPy, torch CPU tensors
    values = c.drop_select(keys[:1], timeout=5.0)

Zero-copy transfers use registered regions (Client.register_region). The vLLM
connector is ``kvstore.vllm.KVStoreConnector``.
"""

from kvstore import errors
from kvstore.errors import (
    DataLoss,
    Internal,
    InvalidArgument,
    KVStoreError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Timeout,
    Unavailable,
)
from kvstore._kvstore import (
    KEY_SIZE,
    Client,
    EntryInfo,
    EntryMeta,
    ListPage,
    Region,
    StoreStats,
    TierStats,
    block_keys,
    chain_key,
    chain_keys,
    key_hex,
    namespace_seed,
    value_checksum,
)

__version__ = "0.1.0"

__all__ = [
    "KEY_SIZE",
    "Client",
    "EntryInfo",
    "EntryMeta",
    "ListPage",
    "Region",
    "StoreStats",
    "TierStats",
    "block_keys",
    "chain_key",
    "chain_keys",
    "key_hex",
    "namespace_seed",
    "value_checksum",
] + errors.__all__
