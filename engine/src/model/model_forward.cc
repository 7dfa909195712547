// The forward pass: a batch of (sequence, new tokens) items goes through
// every layer together; attention reads each sequence's paged cache. Only the
// last position of each item reaches the LM head. Model::Forward reserves the
// cache slots and builds the index arrays, then runs the CPU backend here or
// the CUDA backend (cuda_forward.cc).
#include <algorithm>
#include <cmath>

#include "cuda_forward.h"
#include "forward_batch.h"
#include "kernel_status.h"
#include "kvstore/engine/model.h"
#include "kvstore/kernels/cpu_ops.h"

namespace kvstore::engine {
namespace {

Status Check(const kernels::Status& st, const char* where) { return FromKernelStatus(st, where); }

// The CPU backend. Writes the new tokens' K and V into cache and returns the
// logits of each sequence's last token.
Result<std::vector<std::vector<float>>> ForwardCpu(const ModelConfig& c,
                                                   const ModelWeights& weights, PagedKvCache& cache,
                                                   kernels::ThreadPool* pool,
                                                   const ForwardBatch& b) {
  const int bs = cache.block_size();
  const int total = b.num_tokens;
  const int max_blocks = b.max_blocks;
  const std::vector<int32_t>& ids = b.ids;
  const std::vector<int32_t>& pos = b.pos;
  const std::vector<int32_t>& token_seq = b.token_seq;
  const std::vector<int32_t>& slots = b.slots;
  const std::vector<int32_t>& block_tables = b.block_tables;
  const std::vector<int>& last_row = b.last_row;

  const int h = c.hidden_size, qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim,
            f = c.intermediate_size;
  std::vector<float> x(size_t(total) * h), xn(size_t(total) * h), q(size_t(total) * qd),
      k(size_t(total) * kvd), v(size_t(total) * kvd), attn(size_t(total) * qd),
      proj(size_t(total) * h), gate(size_t(total) * f), up(size_t(total) * f);
  KVSTORE_RETURN_IF_ERROR(Check(
      kernels::EmbeddingCpu(weights.embed.data(), ids.data(), x.data(), total, c.vocab_size, h),
      "embedding"));
  const kernels::PagedAttentionParams ap =
      AttentionParams(c, total, bs, cache.num_blocks(), max_blocks);

  for (int l = 0; l < c.num_layers; ++l) {
    const LayerWeights& w = weights.layers[l];
    float* k_cache = cache.data() + kernels::LayerCacheOffset(cache.shape(), l, 0);
    float* v_cache = cache.data() + kernels::LayerCacheOffset(cache.shape(), l, 1);
    KVSTORE_RETURN_IF_ERROR(Check(
        kernels::RmsNormCpu(x.data(), w.attn_norm.data(), xn.data(), total, h, c.rms_norm_eps),
        "attn norm"));
    KVSTORE_RETURN_IF_ERROR(
        Check(kernels::MatmulCpu(xn.data(), w.wq.data(), q.data(), total, qd, h, pool), "q_proj"));
    KVSTORE_RETURN_IF_ERROR(
        Check(kernels::MatmulCpu(xn.data(), w.wk.data(), k.data(), total, kvd, h, pool), "k_proj"));
    KVSTORE_RETURN_IF_ERROR(
        Check(kernels::MatmulCpu(xn.data(), w.wv.data(), v.data(), total, kvd, h, pool), "v_proj"));
    KVSTORE_RETURN_IF_ERROR(Check(
        kernels::RopeCpu(q.data(), pos.data(), total, c.num_heads, c.head_dim, RopeParamsOf(c)),
        "rope q"));
    KVSTORE_RETURN_IF_ERROR(Check(
        kernels::RopeCpu(k.data(), pos.data(), total, c.num_kv_heads, c.head_dim, RopeParamsOf(c)),
        "rope k"));
    KVSTORE_RETURN_IF_ERROR(
        Check(kernels::KvWriteCpu(k.data(), v.data(), slots.data(), k_cache, v_cache, total,
                                  cache.num_blocks(), bs, c.num_kv_heads, c.head_dim),
              "kv write"));
    KVSTORE_RETURN_IF_ERROR(
        Check(kernels::PagedAttentionCpu(q.data(), k_cache, v_cache, block_tables.data(),
                                         token_seq.data(), pos.data(), attn.data(), ap, pool),
              "attention"));
    KVSTORE_RETURN_IF_ERROR(Check(
        kernels::MatmulCpu(attn.data(), w.wo.data(), proj.data(), total, h, qd, pool), "o_proj"));
    KVSTORE_RETURN_IF_ERROR(
        Check(kernels::ResidualAddCpu(x.data(), proj.data(), int64_t(total) * h), "residual"));
    KVSTORE_RETURN_IF_ERROR(
        Check(kernels::RmsNormCpu(x.data(), w.mlp_norm.data(), xn.data(), total, h, c.rms_norm_eps),
              "mlp norm"));
    KVSTORE_RETURN_IF_ERROR(
        Check(kernels::MatmulCpu(xn.data(), w.w_gate.data(), gate.data(), total, f, h, pool),
              "gate_proj"));
    KVSTORE_RETURN_IF_ERROR(Check(
        kernels::MatmulCpu(xn.data(), w.w_up.data(), up.data(), total, f, h, pool), "up_proj"));
    KVSTORE_RETURN_IF_ERROR(Check(
        kernels::SwiGluCpu(gate.data(), up.data(), gate.data(), int64_t(total) * f), "swiglu"));
    KVSTORE_RETURN_IF_ERROR(
        Check(kernels::MatmulCpu(gate.data(), w.w_down.data(), proj.data(), total, h, f, pool),
              "down_proj"));
    KVSTORE_RETURN_IF_ERROR(
        Check(kernels::ResidualAddCpu(x.data(), proj.data(), int64_t(total) * h), "residual"));
  }

  // Final norm and LM head on the last position of each item only.
  const int n_out = b.num_seqs;
  std::vector<float> last(size_t(n_out) * h), logits(size_t(n_out) * c.vocab_size);
  for (int i = 0; i < n_out; ++i)
    std::copy_n(x.begin() + size_t(last_row[i]) * h, h, last.begin() + size_t(i) * h);
  KVSTORE_RETURN_IF_ERROR(Check(kernels::RmsNormCpu(last.data(), weights.final_norm.data(),
                                                    last.data(), n_out, h, c.rms_norm_eps),
                                "final norm"));
  KVSTORE_RETURN_IF_ERROR(Check(kernels::MatmulCpu(last.data(), weights.lm_head.data(),
                                                   logits.data(), n_out, c.vocab_size, h, pool),
                                "lm_head"));
  std::vector<std::vector<float>> out(n_out);
  for (int i = 0; i < n_out; ++i)
    out[i].assign(logits.begin() + size_t(i) * c.vocab_size,
                  logits.begin() + size_t(i + 1) * c.vocab_size);
  return out;
}

}  // namespace

Result<std::vector<std::vector<float>>> Model::Forward(std::span<const BatchItem> items) {
  const ModelConfig& c = config_;
  const int bs = cache_.block_size();
  int total = 0;
  for (const BatchItem& it : items) {
    if (it.tokens.empty()) return Status::InvalidArgument("forward: no new tokens");
    for (int32_t t : it.tokens)
      if (t < 0 || t >= c.vocab_size)
        return Status::InvalidArgument("forward: token id " + std::to_string(t) +
                                       " outside the vocabulary of " +
                                       std::to_string(c.vocab_size));
    total += static_cast<int>(it.tokens.size());
  }
  // Reserve the slots first so a full cache fails before anything changes.
  for (const BatchItem& it : items)
    KVSTORE_RETURN_IF_ERROR(
        cache_.PrepareAppend(it.seq, it.start_pos + static_cast<int>(it.tokens.size())));

  ForwardBatch b;
  b.num_tokens = total;
  b.num_seqs = static_cast<int>(items.size());
  for (const BatchItem& it : items)
    b.max_blocks = std::max(b.max_blocks, static_cast<int>(cache_.BlockTable(it.seq).size()));
  b.block_tables.assign(items.size() * b.max_blocks, -1);
  b.ids.resize(total);
  b.pos.resize(total);
  b.token_seq.resize(total);
  b.slots.resize(total);
  b.last_row.resize(items.size());
  int row = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& table = cache_.BlockTable(items[i].seq);
    std::copy(table.begin(), table.end(), b.block_tables.begin() + i * b.max_blocks);
    for (size_t j = 0; j < items[i].tokens.size(); ++j, ++row) {
      b.ids[row] = items[i].tokens[j];
      b.pos[row] = items[i].start_pos + static_cast<int>(j);
      b.token_seq[row] = static_cast<int>(i);
      b.slots[row] = static_cast<int32_t>(
          kernels::PositionSlot(b.block_tables.data() + i * b.max_blocks, b.pos[row], bs));
    }
    b.last_row[i] = row - 1;
  }

  std::vector<std::vector<float>> out;
  if (gpu_ != nullptr) {
    KVSTORE_ASSIGN_OR_RETURN(out, gpu_->Forward(b, cache_));
  } else {
    KVSTORE_ASSIGN_OR_RETURN(out, ForwardCpu(config_, weights_, cache_, &pool_, b));
  }
  for (size_t i = 0; i < items.size(); ++i)
    KVSTORE_RETURN_IF_ERROR(
        cache_.SetNumTokens(items[i].seq, items[i].start_pos + int(items[i].tokens.size())));
  return out;
}

}  // namespace kvstore::engine
