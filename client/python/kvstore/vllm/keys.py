"""Per-layer keys of a request's blocks.

Block i of layer l is stored under
``chain_key(h_{i-1}, tokens of block i, block_size, extra=b"layer=<l>")`` where
``h_i`` are ``kvstore.block_keys(namespace, block_size, tokens)`` (``h_-1`` the
namespace seed): the prefix's chained hash with the layer mixed into the last
step, so a layer's key exists only for the exact prefix under the exact model.
"""

from __future__ import annotations

import kvstore


def layer_extra(layer: int) -> bytes:
    return b"layer=%d" % layer


class RequestKeys:
    """Keys of one request's full blocks, computed once per (namespace, tokens)."""

    def __init__(self, namespace: str, block_size: int, token_ids: list[int]):
        self.namespace = namespace
        self.block_size = block_size
        n = len(token_ids) // block_size
        self.tokens = list(token_ids[: n * block_size])
        self.block_keys = kvstore.block_keys(namespace, block_size, self.tokens)
        self.parents = [kvstore.namespace_seed(namespace)] + self.block_keys[:-1]

    @property
    def num_blocks(self) -> int:
        return len(self.block_keys)

    def layer_keys(self, layer: int, first: int, end: int) -> list[bytes]:
        """Keys of blocks [first, end) of one layer."""
        if not 0 <= first <= end <= self.num_blocks:
            raise ValueError(f"blocks [{first}, {end}) outside the request's {self.num_blocks}")
        if first == end:
            return []
        bs = self.block_size
        return kvstore.chain_keys(self.parents[first:end], self.tokens[first * bs:end * bs], bs,
                                  layer_extra(layer))
