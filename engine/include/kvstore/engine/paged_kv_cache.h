// PagedKvCache: the KV cache of one model, in fixed-size blocks, with a block
// table per sequence, prefix sharing by block key, and pack/unpack of whole
// blocks to and from the contiguous payload the store holds.
//
// Storage (fp32, host memory, zeroed at creation), one allocation:
//   [num_layers, 2 (K, V), num_blocks, block_size, kv_heads, head_dim]
// Packed payload of n blocks (what travels through the store), version 1:
//   [n, num_layers, 2 (K, V), block_size, kv_heads, head_dim] fp32, native
//   (little-endian) byte order; KvLayoutString() names it.
//
// Blocks are reference counted. A full block can be published under a key
// (e.g. the store's prefix-hash key); when its last sequence frees it, a
// published block stays cached, evictable in LRU order, so a later sequence
// with the same prefix can attach it instead of recomputing it. A block that
// is shared or published is copied before it is written (copy-on-write).
//
// Thread-safety: not thread-safe; owned by the thread that runs the model.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "kvstore/kernels/host_device.h"
#include "kvstore/status.h"

namespace kvstore::engine {

using SequenceId = int64_t;
using BlockKey = std::string;  // opaque bytes, e.g. a prefix-hash key

class PagedKvCache {
 public:
  // REQUIRES: every field of shape is positive.
  explicit PagedKvCache(const kernels::KvCacheShape& shape);

  const kernels::KvCacheShape& shape() const { return shape_; }
  int block_size() const { return shape_.block_size; }
  int num_blocks() const { return shape_.num_blocks; }
  // Blocks an allocation can take now: free plus cached-but-unused.
  int NumAvailableBlocks() const;
  float* data() { return storage_.data(); }
  const float* data() const { return storage_.data(); }

  // ---- sequences ----
  SequenceId CreateSequence();
  // A new sequence holding the same tokens as seq, sharing its blocks (each
  // copied before either sequence writes it). NotFound for an unknown id.
  Result<SequenceId> ForkSequence(SequenceId seq);
  // Releases the sequence's blocks. NotFound for an unknown id.
  Status FreeSequence(SequenceId seq);
  bool HasSequence(SequenceId seq) const;
  // Tokens whose K and V are in the cache: positions [0, NumTokens).
  // REQUIRES: HasSequence(seq).
  int NumTokens(SequenceId seq) const;
  // Block ids of the sequence, in position order. REQUIRES: HasSequence(seq).
  const std::vector<int32_t>& BlockTable(SequenceId seq) const;
  // Allocates blocks so the sequence can hold num_tokens tokens, and makes
  // the blocks that positions [NumTokens, num_tokens) fall in writable
  // (copy-on-write). ResourceExhausted when the pool runs out.
  Status PrepareAppend(SequenceId seq, int num_tokens);
  // Sets NumTokens after the model wrote the KV (or to truncate: blocks past
  // the new end are released). REQUIRES: blocks reserved for num_tokens.
  Status SetNumTokens(SequenceId seq, int num_tokens);

  // ---- prefix sharing ----
  // Publishes full block block_index of seq under key. A key already
  // published elsewhere keeps its first block.
  Status PublishBlock(SequenceId seq, int block_index, const BlockKey& key);
  // Number of leading keys whose blocks are in the cache now.
  int MatchPrefix(std::span<const BlockKey> keys) const;
  // Appends the cached blocks of keys to an empty sequence, which then holds
  // keys.size() * block_size tokens. NotFound if a key is not cached.
  Status AttachPrefix(SequenceId seq, std::span<const BlockKey> keys);

  // ---- transfer ----
  // Bytes of one block's packed payload.
  size_t PackedBlockBytes() const;
  // Packs blocks [first_block, first_block + count) of seq into out, which
  // must be exactly count * PackedBlockBytes() bytes. The last block of a
  // sequence may be partial; its unused slots are packed as they are (zeros
  // unless the block was reused).
  Status PackBlocks(SequenceId seq, int first_block, int count, std::span<std::byte> out) const;
  // One block's payload.
  Result<std::vector<std::byte>> PackBlock(SequenceId seq, int block_index) const;
  // Appends the blocks of payload (a whole number of packed blocks) to seq,
  // whose NumTokens must be a multiple of block_size, and adds num_tokens to
  // NumTokens; num_tokens must fall within the last unpacked block (pass
  // blocks * block_size for full blocks).
  Status UnpackBlocks(SequenceId seq, std::span<const std::byte> payload, int num_tokens);

 private:
  struct Sequence {
    std::vector<int32_t> blocks;
    int num_tokens = 0;
  };
  Result<int32_t> AllocateBlock();
  void ReleaseBlock(int32_t block);
  void CopyBlock(int32_t from, int32_t to);
  Sequence* Find(SequenceId seq);
  const Sequence* Find(SequenceId seq) const;

  kernels::KvCacheShape shape_;
  std::vector<float> storage_;
  std::vector<int> refcount_;        // per block
  std::vector<BlockKey> block_key_;  // per block; empty when unpublished
  std::vector<int32_t> free_;        // unpublished, unreferenced; popped from the back
  std::list<int32_t> lru_;           // published, unreferenced; evicted from the front
  std::vector<std::list<int32_t>::iterator> lru_pos_;  // per block, valid when in lru_
  std::vector<bool> in_lru_;
  std::unordered_map<BlockKey, int32_t> published_;
  std::unordered_map<SequenceId, Sequence> sequences_;
  SequenceId next_id_ = 1;
};

}  // namespace kvstore::engine
