// CPU KV cache kernels: write new tokens into the paged cache, and pack /
// unpack whole blocks to and from the store's contiguous payload.
#include <cstring>
#include <string>

#include "kvstore/kernels/cpu_ops.h"

namespace kvstore::kernels {

Status KvWriteCpu(const float* k, const float* v, const int32_t* slot_mapping, float* k_cache,
                  float* v_cache, int num_tokens, int num_blocks, int block_size, int kv_heads,
                  int head_dim) {
  const int64_t num_slots = static_cast<int64_t>(num_blocks) * block_size;
  for (int t = 0; t < num_tokens; ++t)
    if (slot_mapping[t] >= num_slots)
      return Status::InvalidArgument("kv_write: slot " + std::to_string(slot_mapping[t]) +
                                     " out of range");
  const int64_t row = static_cast<int64_t>(kv_heads) * head_dim;
  for (int t = 0; t < num_tokens; ++t) {
    const int64_t slot = slot_mapping[t];
    if (slot < 0) continue;
    std::memcpy(k_cache + SlotOffset(slot, 0, kv_heads, head_dim), k + t * row,
                sizeof(float) * row);
    std::memcpy(v_cache + SlotOffset(slot, 0, kv_heads, head_dim), v + t * row,
                sizeof(float) * row);
  }
  return Status::Ok();
}

namespace {
Status CheckIds(const char* op, const int32_t* block_ids, int num_ids, const KvCacheShape& s) {
  for (int i = 0; i < num_ids; ++i)
    if (block_ids[i] < 0 || block_ids[i] >= s.num_blocks)
      return Status::InvalidArgument(std::string(op) + ": block id " +
                                     std::to_string(block_ids[i]) + " out of range [0, " +
                                     std::to_string(s.num_blocks) + ")");
  return Status::Ok();
}
}  // namespace

Status KvPackCpu(const float* cache, const int32_t* block_ids, int num_ids, float* out,
                 const KvCacheShape& shape) {
  KVSTORE_KERNEL_RETURN_IF_ERROR(CheckIds("kv_pack", block_ids, num_ids, shape));
  const int64_t chunk = BlockElems(shape);
  const int64_t chunks_per_block = 2 * static_cast<int64_t>(shape.num_layers);
  for (int64_t c = 0; c < num_ids * chunks_per_block; ++c) {
    const int32_t id = block_ids[c / chunks_per_block];
    std::memcpy(out + c * chunk, cache + PackChunkCacheOffset(shape, id, c), sizeof(float) * chunk);
  }
  return Status::Ok();
}

Status KvUnpackCpu(const float* in, const int32_t* block_ids, int num_ids, float* cache,
                   const KvCacheShape& shape) {
  KVSTORE_KERNEL_RETURN_IF_ERROR(CheckIds("kv_unpack", block_ids, num_ids, shape));
  const int64_t chunk = BlockElems(shape);
  const int64_t chunks_per_block = 2 * static_cast<int64_t>(shape.num_layers);
  for (int64_t c = 0; c < num_ids * chunks_per_block; ++c) {
    const int32_t id = block_ids[c / chunks_per_block];
    std::memcpy(cache + PackChunkCacheOffset(shape, id, c), in + c * chunk, sizeof(float) * chunk);
  }
  return Status::Ok();
}

}  // namespace kvstore::kernels
