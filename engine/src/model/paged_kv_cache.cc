#include "kvstore/engine/paged_kv_cache.h"

#include "kernel_status.h"

#include <cassert>
#include <cstring>

#include "kvstore/kernels/cpu_ops.h"

namespace kvstore::engine {

PagedKvCache::PagedKvCache(const kernels::KvCacheShape& shape)
    : shape_(shape),
      storage_(static_cast<size_t>(kernels::LayerCacheOffset(shape, shape.num_layers, 0)), 0.0f),
      refcount_(shape.num_blocks, 0),
      block_key_(shape.num_blocks),
      lru_pos_(shape.num_blocks),
      in_lru_(shape.num_blocks, false) {
  assert(shape.num_layers > 0 && shape.num_blocks > 0 && shape.block_size > 0 &&
         shape.kv_heads > 0 && shape.head_dim > 0);
  free_.reserve(shape.num_blocks);
  for (int32_t b = shape.num_blocks - 1; b >= 0; --b) free_.push_back(b);  // hand out 0, 1, ...
}

int PagedKvCache::NumAvailableBlocks() const {
  return static_cast<int>(free_.size() + lru_.size());
}

SequenceId PagedKvCache::CreateSequence() {
  const SequenceId id = next_id_++;
  sequences_.emplace(id, Sequence{});
  return id;
}

Result<SequenceId> PagedKvCache::ForkSequence(SequenceId seq) {
  const Sequence* s = Find(seq);
  if (s == nullptr) return Status::NotFound("kv cache: no sequence " + std::to_string(seq));
  Sequence copy = *s;
  for (int32_t b : copy.blocks) ++refcount_[b];  // held by seq, so never in the LRU
  const SequenceId id = next_id_++;
  sequences_.emplace(id, std::move(copy));
  return id;
}

PagedKvCache::Sequence* PagedKvCache::Find(SequenceId seq) {
  auto it = sequences_.find(seq);
  return it == sequences_.end() ? nullptr : &it->second;
}
const PagedKvCache::Sequence* PagedKvCache::Find(SequenceId seq) const {
  auto it = sequences_.find(seq);
  return it == sequences_.end() ? nullptr : &it->second;
}

bool PagedKvCache::HasSequence(SequenceId seq) const { return Find(seq) != nullptr; }

int PagedKvCache::NumTokens(SequenceId seq) const {
  const Sequence* s = Find(seq);
  assert(s != nullptr);
  return s->num_tokens;
}

const std::vector<int32_t>& PagedKvCache::BlockTable(SequenceId seq) const {
  const Sequence* s = Find(seq);
  assert(s != nullptr);
  return s->blocks;
}

Status PagedKvCache::FreeSequence(SequenceId seq) {
  Sequence* s = Find(seq);
  if (s == nullptr) return Status::NotFound("kv cache: no sequence " + std::to_string(seq));
  for (int32_t b : s->blocks) ReleaseBlock(b);
  sequences_.erase(seq);
  return Status::Ok();
}

Result<int32_t> PagedKvCache::AllocateBlock() {
  int32_t b;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else if (!lru_.empty()) {
    b = lru_.front();  // evict the least recently released published block
    lru_.pop_front();
    in_lru_[b] = false;
    published_.erase(block_key_[b]);
    block_key_[b].clear();
  } else {
    return Status::ResourceExhausted("kv cache: all " + std::to_string(shape_.num_blocks) +
                                     " blocks are in use");
  }
  refcount_[b] = 1;
  return b;
}

void PagedKvCache::ReleaseBlock(int32_t b) {
  assert(refcount_[b] > 0);
  if (--refcount_[b] > 0) return;
  if (!block_key_[b].empty()) {
    lru_.push_back(b);
    lru_pos_[b] = std::prev(lru_.end());
    in_lru_[b] = true;
  } else {
    free_.push_back(b);
  }
}

void PagedKvCache::CopyBlock(int32_t from, int32_t to) {
  const int64_t n = kernels::BlockElems(shape_);
  for (int l = 0; l < shape_.num_layers; ++l)
    for (int kv = 0; kv < 2; ++kv) {
      float* base = storage_.data() + kernels::LayerCacheOffset(shape_, l, kv);
      std::memcpy(base + to * n, base + from * n, sizeof(float) * n);
    }
}

Status PagedKvCache::PrepareAppend(SequenceId seq, int num_tokens) {
  Sequence* s = Find(seq);
  if (s == nullptr) return Status::NotFound("kv cache: no sequence " + std::to_string(seq));
  const int bs = shape_.block_size;
  const size_t needed = static_cast<size_t>((num_tokens + bs - 1) / bs);
  const size_t old_blocks = s->blocks.size();
  while (s->blocks.size() < needed) {
    auto b = AllocateBlock();
    if (!b.ok()) {
      while (s->blocks.size() > old_blocks) {  // leave the sequence as it was
        ReleaseBlock(s->blocks.back());
        s->blocks.pop_back();
      }
      return b.status();
    }
    s->blocks.push_back(*b);
  }
  // Blocks the new positions land in must not be shared or published.
  for (int i = s->num_tokens / bs; i < static_cast<int>(std::min(needed, old_blocks)); ++i) {
    const int32_t b = s->blocks[i];
    if (refcount_[b] == 1 && block_key_[b].empty()) continue;
    KVSTORE_ASSIGN_OR_RETURN(int32_t copy, AllocateBlock());
    CopyBlock(b, copy);
    ReleaseBlock(b);
    s->blocks[i] = copy;
  }
  return Status::Ok();
}

Status PagedKvCache::SetNumTokens(SequenceId seq, int num_tokens) {
  Sequence* s = Find(seq);
  if (s == nullptr) return Status::NotFound("kv cache: no sequence " + std::to_string(seq));
  const int bs = shape_.block_size;
  const size_t needed = static_cast<size_t>((num_tokens + bs - 1) / bs);
  if (num_tokens < 0 || needed > s->blocks.size())
    return Status::InvalidArgument("kv cache: " + std::to_string(num_tokens) +
                                   " tokens exceed the reserved blocks");
  while (s->blocks.size() > needed) {
    ReleaseBlock(s->blocks.back());
    s->blocks.pop_back();
  }
  s->num_tokens = num_tokens;
  return Status::Ok();
}

Status PagedKvCache::PublishBlock(SequenceId seq, int block_index, const BlockKey& key) {
  Sequence* s = Find(seq);
  if (s == nullptr) return Status::NotFound("kv cache: no sequence " + std::to_string(seq));
  if (key.empty()) return Status::InvalidArgument("kv cache: empty block key");
  if (block_index < 0 || (block_index + 1) * shape_.block_size > s->num_tokens)
    return Status::InvalidArgument("kv cache: block " + std::to_string(block_index) +
                                   " is not a full block of the sequence");
  if (published_.count(key)) return Status::Ok();
  const int32_t b = s->blocks[block_index];
  if (!block_key_[b].empty()) return Status::Ok();  // already published under another key
  block_key_[b] = key;
  published_.emplace(key, b);
  return Status::Ok();
}

int PagedKvCache::MatchPrefix(std::span<const BlockKey> keys) const {
  int n = 0;
  while (n < static_cast<int>(keys.size()) && published_.count(keys[n])) ++n;
  return n;
}

Status PagedKvCache::AttachPrefix(SequenceId seq, std::span<const BlockKey> keys) {
  Sequence* s = Find(seq);
  if (s == nullptr) return Status::NotFound("kv cache: no sequence " + std::to_string(seq));
  if (!s->blocks.empty()) return Status::InvalidArgument("kv cache: sequence is not empty");
  if (MatchPrefix(keys) != static_cast<int>(keys.size()))
    return Status::NotFound("kv cache: prefix block " + std::to_string(MatchPrefix(keys)) +
                            " is not cached");
  for (const BlockKey& k : keys) {
    const int32_t b = published_.at(k);
    if (in_lru_[b]) {
      lru_.erase(lru_pos_[b]);
      in_lru_[b] = false;
    }
    ++refcount_[b];
    s->blocks.push_back(b);
  }
  s->num_tokens = static_cast<int>(keys.size()) * shape_.block_size;
  return Status::Ok();
}

size_t PagedKvCache::PackedBlockBytes() const {
  return static_cast<size_t>(kernels::PackedBlockElems(shape_)) * sizeof(float);
}

Status PagedKvCache::PackBlocks(SequenceId seq, int first_block, int count,
                                std::span<std::byte> out) const {
  const Sequence* s = Find(seq);
  if (s == nullptr) return Status::NotFound("kv cache: no sequence " + std::to_string(seq));
  const int used_blocks = (s->num_tokens + shape_.block_size - 1) / shape_.block_size;
  if (first_block < 0 || count < 0 || first_block + count > used_blocks)
    return Status::InvalidArgument("kv pack: blocks [" + std::to_string(first_block) + ", " +
                                   std::to_string(first_block + count) + ") outside the " +
                                   std::to_string(used_blocks) + " blocks of the sequence");
  if (out.size() != count * PackedBlockBytes())
    return Status::InvalidArgument("kv pack: buffer of " + std::to_string(out.size()) +
                                   " bytes, need " + std::to_string(count * PackedBlockBytes()));
  kernels::Status st = kernels::KvPackCpu(storage_.data(), s->blocks.data() + first_block, count,
                                          reinterpret_cast<float*>(out.data()), shape_);
  KVSTORE_RETURN_IF_ERROR(FromKernelStatus(st, "kv cache"));
  return Status::Ok();
}

Result<std::vector<std::byte>> PagedKvCache::PackBlock(SequenceId seq, int block_index) const {
  std::vector<std::byte> out(PackedBlockBytes());
  KVSTORE_RETURN_IF_ERROR(PackBlocks(seq, block_index, 1, out));
  return out;
}

Status PagedKvCache::UnpackBlocks(SequenceId seq, std::span<const std::byte> payload,
                                  int num_tokens) {
  Sequence* s = Find(seq);
  if (s == nullptr) return Status::NotFound("kv cache: no sequence " + std::to_string(seq));
  const int bs = shape_.block_size;
  if (payload.empty() || payload.size() % PackedBlockBytes() != 0)
    return Status::InvalidArgument("kv unpack: " + std::to_string(payload.size()) +
                                   " bytes is not a whole number of " +
                                   std::to_string(PackedBlockBytes()) + "-byte blocks");
  if (s->num_tokens % bs != 0 || s->blocks.size() != static_cast<size_t>(s->num_tokens / bs))
    return Status::InvalidArgument("kv unpack: the sequence ends inside a block");
  const int count = static_cast<int>(payload.size() / PackedBlockBytes());
  if (num_tokens <= (count - 1) * bs || num_tokens > count * bs)
    return Status::InvalidArgument("kv unpack: " + std::to_string(num_tokens) + " tokens for " +
                                   std::to_string(count) + " blocks");
  if (reinterpret_cast<uintptr_t>(payload.data()) % alignof(float) != 0)
    return Status::InvalidArgument("kv unpack: payload is not 4-byte aligned");
  const int old_tokens = s->num_tokens;
  KVSTORE_RETURN_IF_ERROR(PrepareAppend(seq, old_tokens + num_tokens));
  const int32_t* ids = s->blocks.data() + old_tokens / bs;
  kernels::Status st = kernels::KvUnpackCpu(reinterpret_cast<const float*>(payload.data()), ids,
                                            count, storage_.data(), shape_);
  KVSTORE_RETURN_IF_ERROR(FromKernelStatus(st, "kv cache"));
  s->num_tokens = old_tokens + num_tokens;
  return Status::Ok();
}

}  // namespace kvstore::engine
