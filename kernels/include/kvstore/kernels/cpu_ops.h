// CPU implementations of the model and KV-cache kernels.
//
// Each function here has a CUDA twin in kvstore/kernels/cuda/<op>.cuh with the
// same arguments plus a cudaStream_t; the CPU one is the reference the GPU one
// is tested against, and the backend the model runs when no GPU is found.
// All tensors are fp32, row-major, shapes as commented. Index ranges the GPU
// cannot check cheaply (token ids, block ids) behave the same on both: an
// out-of-range id yields zeros (embedding) or is rejected by the launcher's
// host-side checks where the ids are on the host.
//
// Thread-safety: the functions are reentrant; a ThreadPool may serve one call
// at a time. Results do not depend on the pool's size.
#pragma once

#include <cstdint>

#include "kvstore/kernels/host_device.h"
#include "kvstore/kernels/status.h"
#include "kvstore/kernels/thread_pool.h"

namespace kvstore::kernels {

// out = x / rms(x) * weight, row by row. out may alias x.
Status RmsNormCpu(const float* x,       // [rows, dim]
                  const float* weight,  // [dim]
                  float* out,           // [rows, dim]
                  int rows, int dim, float eps);

// Rotary position embedding in place (HF Llama rotate_half convention),
// frequencies scaled as params say (see RopeInvFreq in host_device.h).
Status RopeCpu(float* x,                  // [num_tokens, num_heads, head_dim]
               const int32_t* positions,  // [num_tokens]
               int num_tokens, int num_heads, int head_dim, const RopeParams& params);
// Unscaled RoPE with base theta.
Status RopeCpu(float* x,                  // [num_tokens, num_heads, head_dim]
               const int32_t* positions,  // [num_tokens]
               int num_tokens, int num_heads, int head_dim, float theta);

// out = silu(gate) * up. out may alias gate or up.
Status SwiGluCpu(const float* gate,  // [n]
                 const float* up,    // [n]
                 float* out,         // [n]
                 int64_t n);

// x += y.
Status ResidualAddCpu(float* x,        // [n]
                      const float* y,  // [n]
                      int64_t n);

// out[i] = table[tokens[i]]; a token id outside [0, vocab) gives a zero row.
Status EmbeddingCpu(const float* table,     // [vocab, dim]
                    const int32_t* tokens,  // [num_tokens]
                    float* out,             // [num_tokens, dim]
                    int num_tokens, int vocab, int dim);

// Index of the largest logit per row; the smallest index wins ties; NaNs lose.
Status ArgmaxCpu(const float* logits,  // [rows, vocab]
                 int32_t* out,         // [rows]
                 int rows, int vocab);

// y = x * w^T (w in the Hugging Face [out_features, in_features] layout).
// Every y element is a fixed-order dot product, so a row's result does not
// depend on m or on the pool.
Status MatmulCpu(const float* x,  // [m, k]
                 const float* w,  // [n, k]
                 float* y,        // [m, n]
                 int m, int n, int k, ThreadPool* pool = nullptr);

// Writes the new tokens' K and V into the paged cache of one layer.
// slot_mapping[i] = block_id * block_size + offset_in_block; a negative slot
// skips the token.
Status KvWriteCpu(const float* k,               // [num_tokens, kv_heads, head_dim]
                  const float* v,               // [num_tokens, kv_heads, head_dim]
                  const int32_t* slot_mapping,  // [num_tokens]
                  float* k_cache,               // [num_blocks, block_size, kv_heads, head_dim]
                  float* v_cache,               // [num_blocks, block_size, kv_heads, head_dim]
                  int num_tokens, int num_blocks, int block_size, int kv_heads, int head_dim);

struct PagedAttentionParams {
  int num_tokens = 0;  // query tokens in the batch
  int num_heads = 0;   // query heads; a multiple of kv_heads (grouped-query)
  int kv_heads = 0;
  int head_dim = 0;
  int block_size = 0;
  int num_blocks = 0;          // blocks in the cache, for bounds
  int max_blocks_per_seq = 0;  // row length of block_tables
  float scale = 1.0f;          // usually 1 / sqrt(head_dim)
};

// Causal attention over a paged cache, for prefill (many tokens of one
// sequence) and decode (one token of each of many sequences) alike. Query
// token i belongs to sequence token_seq[i], sits at position token_pos[i] and
// attends to that sequence's keys at positions [0, token_pos[i]], which must
// already be in the cache (KvWrite first).
Status PagedAttentionCpu(const float* q,        // [num_tokens, num_heads, head_dim]
                         const float* k_cache,  // [num_blocks, block_size, kv_heads, head_dim]
                         const float* v_cache,  // [num_blocks, block_size, kv_heads, head_dim]
                         const int32_t* block_tables,  // [num_seqs, max_blocks_per_seq]
                         const int32_t* token_seq,     // [num_tokens]
                         const int32_t* token_pos,     // [num_tokens]
                         float* out,                   // [num_tokens, num_heads, head_dim]
                         const PagedAttentionParams& p, ThreadPool* pool = nullptr);

// Gathers whole blocks (all layers' K and V) into the contiguous payload the
// store holds. Rejects block ids outside [0, num_blocks).
Status KvPackCpu(const float* cache,  // [num_layers, 2, num_blocks, block_size, kv_heads, head_dim]
                 const int32_t* block_ids,  // [num_ids]
                 int num_ids,
                 float* out,  // [num_ids, num_layers, 2, block_size, kv_heads, head_dim]
                 const KvCacheShape& shape);

// Scatters a payload written by KvPack back into (other) blocks of a cache.
Status KvUnpackCpu(const float* in,  // [num_ids, num_layers, 2, block_size, kv_heads, head_dim]
                   const int32_t* block_ids,  // [num_ids]
                   int num_ids,
                   float* cache,  // [num_layers, 2, num_blocks, block_size, kv_heads, head_dim]
                   const KvCacheShape& shape);

}  // namespace kvstore::kernels
