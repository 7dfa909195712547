// ForwardBatch: one forward step's inputs after the model has reserved cache
// slots for them -- the host-side index arrays both backends consume.
//
// Built by Model::Forward (model_forward.cc) after PagedKvCache::PrepareAppend,
// so every block id in block_tables and every slot is valid and writable.
//
// Thread-safety: a value; owned by the thread running the forward pass.
#pragma once

#include <cstdint>
#include <vector>

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

}  // namespace kvstore::engine
