// Launch helpers shared by the .cu files: grid sizing and turning the last
// CUDA error into a Status that says which op failed.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "kvstore/kernels/status.h"

namespace kvstore::kernels::cuda_detail {

constexpr int kThreads = 256;

inline unsigned GridFor(int64_t n, int threads = kThreads) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks < 1) blocks = 1;
  if (blocks > 65535LL * 32) blocks = 65535LL * 32;  // the kernels are grid-stride loops
  return static_cast<unsigned>(blocks);
}

inline Status LaunchStatus(const char* op) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return Status::Internal(std::string(op) + ": " + cudaGetErrorString(err));
  return Status::Ok();
}

}  // namespace kvstore::kernels::cuda_detail
