// ForwardBatch: one forward step's inputs after the model has reserved cache
// slots for them -- the host-side index arrays both backends consume.
//
// Built by Model::Forward (model_forward.cc) after PagedKvCache::PrepareAppend,
// so every block id in block_tables and every slot is valid and writable.
//
// Thread-safety: a value; owned by the thread running the forward pass.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "kvstore/engine/model_config.h"
#include "kvstore/kernels/cpu_ops.h"

namespace kvstore::engine {

struct ForwardBatch {
  int num_tokens = 0;  // new tokens over all sequences
  int num_seqs = 0;
  int max_blocks = 0;                 // row length of block_tables
  std::vector<int32_t> block_tables;  // [num_seqs, max_blocks], -1 past a sequence's end
  std::vector<int32_t> ids;           // [num_tokens] token ids
  std::vector<int32_t> pos;           // [num_tokens] positions
  std::vector<int32_t> token_seq;     // [num_tokens] row of block_tables
  std::vector<int32_t> slots;         // [num_tokens] cache slot of (block, offset)
  std::vector<int> last_row;          // [num_seqs] row of each sequence's last token
};

// The attention call of a batch: the same shape for the CPU and CUDA backends.
inline kernels::PagedAttentionParams AttentionParams(const ModelConfig& c, int num_tokens,
                                                     int block_size, int num_blocks,
                                                     int max_blocks) {
  kernels::PagedAttentionParams ap;
  ap.num_tokens = num_tokens;
  ap.num_heads = c.num_heads;
  ap.kv_heads = c.num_kv_heads;
  ap.head_dim = c.head_dim;
  ap.block_size = block_size;
  ap.num_blocks = num_blocks;
  ap.max_blocks_per_seq = max_blocks;
  ap.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  return ap;
}

}  // namespace kvstore::engine
