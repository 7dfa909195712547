"""What the scheduler-side connector tells the workers each step.

Plain dataclasses (picklable: vLLM sends the metadata to worker processes).
Block i of a request is the i-th block of its token ids; ``block_ids[i]`` is
where vLLM's paged KV cache holds it.
"""

from __future__ import annotations

import dataclasses

try:  # the metadata must be a KVConnectorMetadata when vLLM is there
    from vllm.distributed.kv_transfer.kv_connector.v1.base import (  # type: ignore
        KVConnectorMetadata as _MetadataBase,
    )
except Exception:  # vLLM absent (or incompatible): a plain base
    class _MetadataBase:  # type: ignore[no-redef]
        pass


@dataclasses.dataclass
class LoadSpec:
    """Load blocks [first_block, end_block) of a request into ``block_ids[first_block:end_block]``."""

    req_id: str
    token_ids: list[int]  # the request's tokens, at least end_block * block_size of them
    block_ids: list[int]  # vLLM block id of each block of the request, from block 0
    first_block: int
    end_block: int
    handoff: bool  # True: drop_select (the entries leave the store); False: select
    asynchronous: bool  # True: finishes between steps and shows in get_finished's recving set
    discard_blocks: int = 0  # handoff: blocks [0, discard_blocks) are taken and thrown away
    # handoff: the cluster node the producer stored the blocks on
    # (kv_transfer_params.remote_store_node); None: the client's placement decides.
    node: str | None = None


@dataclasses.dataclass
class SaveSpec:
    """Save blocks [first_block, end_block) of a request, layer by layer."""

    req_id: str
    token_ids: list[int]
    block_ids: list[int]
    first_block: int
    end_block: int
    handoff: bool  # True: a consumer will drop_select these (already-stored ones get retained)


@dataclasses.dataclass
class KVStoreConnectorMetadata(_MetadataBase):
    loads: list[LoadSpec] = dataclasses.field(default_factory=list)
    saves: list[SaveSpec] = dataclasses.field(default_factory=list)
