// Matrix multiply on the GPU through cuBLAS: y = x * w^T, w in the Hugging
// Face [out_features, in_features] layout.
//
// CUDA twin of MatmulCpu: same arguments (device pointers) plus a cuBLAS
// handle, which the call binds to `stream`. Returns Internal with the cuBLAS
// status if the call fails.
//
// Thread-safety: a cuBLAS handle serves one thread at a time.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "kvstore/kernels/status.h"

namespace kvstore::kernels {

Status MatmulCuda(const float* x,  // [m, k]
                  const float* w,  // [n, k]
                  float* y,        // [m, n]
                  int m, int n, int k, cublasHandle_t handle, cudaStream_t stream);

}  // namespace kvstore::kernels
