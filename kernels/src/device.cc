#include "kvstore/kernels/device.h"

#include <string>

#if defined(KVSTORE_HAVE_CUDA)
#include <cuda_runtime_api.h>
#endif

namespace kvstore::kernels {

bool BuiltWithCuda() {
#if defined(KVSTORE_HAVE_CUDA)
  return true;
#else
  return false;
#endif
}

Status CudaDeviceStatus() {
#if defined(KVSTORE_HAVE_CUDA)
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return Status::Unavailable("cudaGetDeviceCount: " + std::string(cudaGetErrorString(err)) +
                               " (error " + std::to_string(static_cast<int>(err)) + ")");
  }
  if (count <= 0) return Status::Unavailable("no CUDA device");
  return Status::Ok();
#else
  return Status::Unavailable("built without CUDA");
#endif
}

}  // namespace kvstore::kernels
