"""What a KVStoreConnector instance needs to know, and the namespace its keys live in.

The namespace names the model, the KV layout (layers, KV heads, head size,
block size), the KV dtype and the parallel rank, so prefill and decode derive
the same keys from the same token ids whatever PYTHONHASHSEED each process
has, and KV of another model, dtype or rank is never served.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

DEFAULT_STORE = "127.0.0.1:7400"


@dataclasses.dataclass(frozen=True)
class ConnectorConfig:
    """Plain settings of one connector instance (scheduler or worker side)."""

    model: str
    dtype: str  # KV cache dtype, e.g. "bfloat16"
    num_layers: int
    num_kv_heads: int  # per rank
    head_size: int
    block_size: int = 16
    tp_size: int = 1
    tp_rank: int = 0
    pp_size: int = 1
    pp_rank: int = 0
    role: str = "kv_both"  # kv_producer | kv_consumer | kv_both
    store: str = DEFAULT_STORE  # HOST:PORT of kvstored
    token: str | None = None
    load_timeout: float = 30.0  # seconds a handoff load waits for the producer
    prefix_cache: bool = True  # kv_both/kv_producer also publish and reuse prompt prefixes
    ttl: float | None = None  # seconds; None = the store's default
    transport: str = "auto"
    send_threads: int = 4  # inserts in flight at once per layer (the client's pool serves them)

    @property
    def is_producer(self) -> bool:
        return self.role in ("kv_producer", "kv_both")

    @property
    def is_consumer(self) -> bool:
        return self.role in ("kv_consumer", "kv_both")

    def namespace(self, tp_rank: int | None = None) -> str:
        """Key namespace of one rank (the scheduler asks with rank 0)."""
        rank = self.tp_rank if tp_rank is None else tp_rank
        return (
            f"vllm/{self.model}/{self.dtype}/L{self.num_layers}/kv{self.num_kv_heads}"
            f"/d{self.head_size}/b{self.block_size}/tp{self.tp_size}.{rank}"
            f"/pp{self.pp_size}.{self.pp_rank}/paged-kv-v1"
        )

    @property
    def layout(self) -> str:
        """Stored with each value; a load checks it before trusting the bytes."""
        return (
            f"vllm-paged/{self.dtype}/kv{self.num_kv_heads}/d{self.head_size}"
            f"/b{self.block_size}/k+v"
        )

    @property
    def dtype_size(self) -> int:
        return _DTYPE_SIZES[self.dtype]

    @property
    def block_bytes(self) -> int:
        """Bytes of one block of one layer: K then V, [2, block_size, kv_heads, head_size]."""
        return 2 * self.block_size * self.num_kv_heads * self.head_size * self.dtype_size


_DTYPE_SIZES = {
    "float32": 4,
    "float16": 2,
    "bfloat16": 2,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
    "uint8": 1,
    "int8": 1,
}


def dtype_name(dtype: Any) -> str:
    """'bfloat16' for torch.bfloat16, 'bfloat16' for the string 'bfloat16' or 'bf16'."""
    s = str(dtype).replace("torch.", "")
    return {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "float": "float32",
            "fp8": "float8_e4m3fn", "fp8_e4m3": "float8_e4m3fn", "fp8_e5m2": "float8_e5m2"}.get(s, s)


_EXTRA_FIELDS = {
    "store": str,
    "token": str,
    "load_timeout": float,
    "prefix_cache": bool,
    "ttl": float,
    "transport": str,
    "send_threads": int,
    "model": str,
    "dtype": str,
    "num_layers": int,
    "num_kv_heads": int,
    "head_size": int,
    "block_size": int,
    "tp_size": int,
    "tp_rank": int,
    "pp_size": int,
    "pp_rank": int,
}


def from_mapping(values: Mapping[str, Any]) -> ConnectorConfig:
    """ConnectorConfig from a plain dict (tests, tools, non-vLLM users)."""
    unknown = set(values) - set(_EXTRA_FIELDS) - {"role"}
    if unknown:
        raise ValueError(f"unknown KVStoreConnector settings: {sorted(unknown)}")
    kw = {k: (_EXTRA_FIELDS[k](v) if k in _EXTRA_FIELDS and v is not None else v)
          for k, v in values.items()}
    if "dtype" in kw:
        kw["dtype"] = dtype_name(kw["dtype"])
    return ConnectorConfig(**kw)


def _get(obj: Any, name: str, default: Any = None) -> Any:
    return getattr(obj, name, default) if obj is not None else default


def from_vllm_config(vllm_config: Any, tp_rank: int | None = None) -> ConnectorConfig:
    """ConnectorConfig from vLLM's VllmConfig (duck-typed: works on vLLM's objects
    and on test doubles with the same attributes). kv_connector_extra_config
    entries override what is read from the model (e.g. "store", "load_timeout")."""
    ktc = vllm_config.kv_transfer_config
    extra = dict(_get(ktc, "kv_connector_extra_config", None) or {})
    mc = vllm_config.model_config
    pc = vllm_config.parallel_config
    cc = vllm_config.cache_config
    cache_dtype = _get(cc, "cache_dtype", "auto")
    dtype = dtype_name(_get(mc, "dtype") if cache_dtype in (None, "auto") else cache_dtype)
    model = _get(mc, "served_model_name", None) or _get(mc, "model")
    if isinstance(model, (list, tuple)):
        model = model[0]
    values: dict[str, Any] = {
        "model": str(model),
        "dtype": dtype,
        "num_layers": int(mc.get_num_layers(pc)),
        "num_kv_heads": int(mc.get_num_kv_heads(pc)),
        "head_size": int(mc.get_head_size()),
        "block_size": int(_get(cc, "block_size", 16)),
        "tp_size": int(_get(pc, "tensor_parallel_size", 1)),
        "tp_rank": int(tp_rank if tp_rank is not None else 0),
        "pp_size": int(_get(pc, "pipeline_parallel_size", 1)),
        "role": str(_get(ktc, "kv_role", "kv_both")),
    }
    values.update(extra)
    return from_mapping(values)
