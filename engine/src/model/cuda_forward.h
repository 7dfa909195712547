// CudaForward: the model's forward pass on a GPU, behind a plain C++ header so
// model.cc builds with or without the CUDA toolkit.
//
// Weights are uploaded to device memory once, at creation. The KV cache stays
// authoritative in the host PagedKvCache (so PackBlocks / UnpackBlocks,
// copy-on-write and prefix attach keep their exact byte semantics); the GPU
// keeps a mirror of the whole block pool and each Forward syncs it:
//   1. before: every block in the batch's block tables is packed on the host
//      (KvPackCpu), copied host->device and scattered into the mirror
//      (KvUnpackCuda) -- the host may have changed any of them since the last
//      step (UnpackBlocks, copy-on-write, block reuse after a free);
//   2. the layers run on the device, KvWriteCuda writing the new K/V into the
//      mirror;
//   3. after: the blocks the new tokens landed in are gathered on the device
//      (KvPackCuda), copied device->host and scattered into the host cache
//      (KvUnpackCpu); the logits of each sequence's last token are copied back.
// Cost per step: host->device of the full context KV of every sequence in the
// batch (2 * layers * ctx * kv_heads * head_dim * 4 bytes each) plus
// device->host of the touched blocks. Simple and correct; a device-authoritative
// cache would need PagedKvCache to route its pack/unpack/copy through the GPU.
//
// Thread-safety: not thread-safe; driven by the thread that owns the Model.
#pragma once

#include <memory>
#include <vector>

#include "forward_batch.h"
#include "kvstore/engine/model_config.h"
#include "kvstore/engine/model_weights.h"
#include "kvstore/engine/paged_kv_cache.h"
#include "kvstore/status.h"

namespace kvstore::engine {

class CudaForward {
 public:
  virtual ~CudaForward() = default;

  // Runs batch through the model on the GPU and writes the new tokens' K and V
  // into cache (the host cache). Returns logits [vocab] per sequence. On error
  // the host cache is unchanged. REQUIRES: cache has the shape given at creation.
  virtual Result<std::vector<std::vector<float>>> Forward(const ForwardBatch& batch,
                                                          PagedKvCache& cache) = 0;
};

// Uploads weights to the current CUDA device and allocates the KV mirror for
// cache_shape. Unavailable when built without CUDA; ResourceExhausted when
// device memory is short; Internal for other CUDA / cuBLAS failures.
Result<std::unique_ptr<CudaForward>> CreateCudaForward(const ModelConfig& config,
                                                       const ModelWeights& weights,
                                                       const kernels::KvCacheShape& cache_shape);

}  // namespace kvstore::engine
