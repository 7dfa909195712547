// CreateCudaForward for builds without the CUDA toolkit.
#include "cuda_forward.h"

namespace kvstore::engine {

Result<std::unique_ptr<CudaForward>> CreateCudaForward(const ModelConfig&, const ModelWeights&,
                                                       const kernels::KvCacheShape&) {
  return Status::Unavailable("model: built without CUDA");
}

}  // namespace kvstore::engine
