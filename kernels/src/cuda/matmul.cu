#include <string>

#include "kvstore/kernels/cuda/matmul.cuh"

namespace kvstore::kernels {

Status MatmulCuda(const float* x, const float* w, float* y, int m, int n, int k,
                  cublasHandle_t handle, cudaStream_t stream) {
  if (m < 0 || n <= 0 || k <= 0) return Status::InvalidArgument("matmul: bad shape");
  if (m == 0) return Status::Ok();
  cublasStatus_t st = cublasSetStream(handle, stream);
  if (st != CUBLAS_STATUS_SUCCESS)
    return Status::Internal(std::string("matmul: cublasSetStream: ") + cublasGetStatusString(st));
  // Column-major view: y^T [n, m] = w [n, k] (stored as k x n, so transposed) * x^T [k, m].
  const float alpha = 1.0f, beta = 0.0f;
  st = cublasSgemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, k, x, k, &beta, y, n);
  if (st != CUBLAS_STATUS_SUCCESS)
    return Status::Internal(std::string("matmul: cublasSgemm: ") + cublasGetStatusString(st));
  return Status::Ok();
}

}  // namespace kvstore::kernels
