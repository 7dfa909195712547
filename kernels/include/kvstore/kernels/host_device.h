// Per-element math shared by the CUDA kernels and their CPU references.
//
// Everything here is a pure inline function marked KVSTORE_HD, which is
// `__host__ __device__` under nvcc and nothing under a plain C++ compiler, so
// the CPU backend runs the very index arithmetic and formulas the GPU runs.
//
// Thread-safety: pure functions.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define KVSTORE_HD __host__ __device__ __forceinline__
#else
#define KVSTORE_HD inline
#endif

namespace kvstore::kernels {

// Shape of the paged KV cache of one model. The cache is one allocation:
//   [num_layers, 2 (K then V), num_blocks, block_size, kv_heads, head_dim]
// so that layer l's K cache is a plain [num_blocks, block_size, kv_heads, head_dim]
// array, as the attention kernels expect.
struct KvCacheShape {
  int32_t num_layers = 0;
  int32_t num_blocks = 0;
  int32_t block_size = 0;
  int32_t kv_heads = 0;
  int32_t head_dim = 0;
};

// Elements of one block of one layer's K (or V): [block_size, kv_heads, head_dim].
KVSTORE_HD int64_t BlockElems(const KvCacheShape& s) {
  return static_cast<int64_t>(s.block_size) * s.kv_heads * s.head_dim;
}

// Elements of one layer's K (or V) cache: [num_blocks, block_size, kv_heads, head_dim].
KVSTORE_HD int64_t LayerCacheElems(const KvCacheShape& s) { return BlockElems(s) * s.num_blocks; }

// Elements of the packed payload of one block:
//   [num_layers, 2, block_size, kv_heads, head_dim]
KVSTORE_HD int64_t PackedBlockElems(const KvCacheShape& s) {
  return BlockElems(s) * 2 * s.num_layers;
}

// Offset of layer `layer`'s K (kv = 0) or V (kv = 1) cache in the whole cache.
KVSTORE_HD int64_t LayerCacheOffset(const KvCacheShape& s, int layer, int kv) {
  return (static_cast<int64_t>(layer) * 2 + kv) * LayerCacheElems(s);
}

// Pack and unpack move whole [block_size, kv_heads, head_dim] chunks. Chunk c of
// a payload of n blocks is block c / (2 * num_layers), layer (c / 2) % num_layers,
// K or V c % 2. Returns the chunk's offset in the cache; its offset in the
// payload is simply c * BlockElems(s).
KVSTORE_HD int64_t PackChunkCacheOffset(const KvCacheShape& s, int32_t block_id, int64_t c) {
  const int64_t lk = c % (2 * static_cast<int64_t>(s.num_layers));  // layer * 2 + kv
  return (lk * s.num_blocks + block_id) * BlockElems(s);
}

// Offset of (slot, head, 0) in a [num_blocks, block_size, kv_heads, head_dim]
// cache; slot = block_id * block_size + offset_in_block.
KVSTORE_HD int64_t SlotOffset(int64_t slot, int head, int kv_heads, int head_dim) {
  return (slot * kv_heads + head) * head_dim;
}

// Cache slot of position `pos` of a sequence with this block table row.
KVSTORE_HD int64_t PositionSlot(const int32_t* block_table_row, int pos, int block_size) {
  return static_cast<int64_t>(block_table_row[pos / block_size]) * block_size + pos % block_size;
}

KVSTORE_HD float Silu(float x) { return x / (1.0f + expf(-x)); }

KVSTORE_HD float SwiGlu(float gate, float up) { return Silu(gate) * up; }

// Inverse frequency of rotary pair i (HF Llama "rotate_half" convention: the
// pair is (i, i + head_dim / 2)).
KVSTORE_HD float RopeInvFreq(int i, int head_dim, float theta) {
  return 1.0f / powf(theta, static_cast<float>(2 * i) / static_cast<float>(head_dim));
}

// RoPE frequencies: the base theta and a Hugging Face "rope_scaling".
enum class RopeScaling : int { kNone = 0, kLinear = 1, kLlama3 = 2 };
struct RopeParams {
  float theta = 10000.0f;
  RopeScaling scaling = RopeScaling::kNone;
  float factor = 1.0f;                    // linear and llama3
  float low_freq_factor = 1.0f;           // llama3
  float high_freq_factor = 4.0f;          // llama3
  float original_max_position = 8192.0f;  // llama3: original_max_position_embeddings
};

// Inverse frequency of rotary pair i after scaling, as transformers'
// _compute_linear_scaling_rope_parameters (inv_freq / factor) and
// _compute_llama3_parameters (long wavelengths / factor, short ones kept,
// a smooth blend between) compute it.
KVSTORE_HD float RopeInvFreq(int i, int head_dim, const RopeParams& p) {
  const float inv = RopeInvFreq(i, head_dim, p.theta);
  if (p.scaling == RopeScaling::kLinear) return inv / p.factor;
  if (p.scaling != RopeScaling::kLlama3) return inv;
  const float wavelen = 6.283185307179586f / inv;
  const float low_freq_wavelen = p.original_max_position / p.low_freq_factor;
  const float high_freq_wavelen = p.original_max_position / p.high_freq_factor;
  if (wavelen < high_freq_wavelen) return inv;
  if (wavelen > low_freq_wavelen) return inv / p.factor;
  const float smooth = (p.original_max_position / wavelen - p.low_freq_factor) /
                       (p.high_freq_factor - p.low_freq_factor);
  return (1.0f - smooth) * inv / p.factor + smooth * inv;
}

// Rotates the pair (x[i], x[i + head_dim/2]) of one head vector in place.
KVSTORE_HD void RopeRotate(float* x, int i, int pos, int head_dim, const RopeParams& p) {
  const int half = head_dim / 2;
  const float angle = static_cast<float>(pos) * RopeInvFreq(i, head_dim, p);
  const float c = cosf(angle);
  const float s = sinf(angle);
  const float x0 = x[i];
  const float x1 = x[i + half];
  x[i] = x0 * c - x1 * s;
  x[i + half] = x1 * c + x0 * s;
}
KVSTORE_HD void RopeRotate(float* x, int i, int pos, int head_dim, float theta) {
  RopeParams p;
  p.theta = theta;
  RopeRotate(x, i, pos, head_dim, p);
}

// 1 / sqrt(mean(x^2) + eps), given sum(x^2).
KVSTORE_HD float RmsInverse(float sum_squares, int dim, float eps) {
  return 1.0f / sqrtf(sum_squares / static_cast<float>(dim) + eps);
}

}  // namespace kvstore::kernels
