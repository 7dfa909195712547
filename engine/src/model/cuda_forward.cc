// The model's forward pass on a GPU (see cuda_forward.h for the KV sync
// design). Host code only: it calls the kvstore::kernels CUDA launchers and
// the CUDA runtime, so it compiles with the host compiler.
#include "cuda_forward.h"
#include "kernel_status.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "kvstore/kernels/cpu_ops.h"
#include "kvstore/kernels/cuda/embedding.cuh"
#include "kvstore/kernels/cuda/kv_pack.cuh"
#include "kvstore/kernels/cuda/kv_write.cuh"
#include "kvstore/kernels/cuda/matmul.cuh"
#include "kvstore/kernels/cuda/paged_attention.cuh"
#include "kvstore/kernels/cuda/residual_add.cuh"
#include "kvstore/kernels/cuda/rms_norm.cuh"
#include "kvstore/kernels/cuda/rope.cuh"
#include "kvstore/kernels/cuda/swiglu.cuh"

namespace kvstore::engine {
namespace {

Status CudaCheck(cudaError_t err, const char* where) {
  if (err == cudaSuccess) return Status::Ok();
  cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  std::string msg = std::string("model cuda: ") + where + ": " + cudaGetErrorString(err);
  if (err == cudaErrorMemoryAllocation) return Status::ResourceExhausted(std::move(msg));
  return Status::Internal(std::move(msg));
}

Status KernelCheck(const kernels::Status& st, const char* where) {
  return FromKernelStatus(st, std::string("model cuda: ") + where);
}

struct CudaFree {
  void operator()(void* p) const { cudaFree(p); }
};

// Device memory of n elements of T; grows on demand, never shrinks.
template <typename T>
class DeviceArray {
 public:
  T* get() const { return static_cast<T*>(ptr_.get()); }
  size_t size() const { return size_; }
  Status Reserve(size_t n, const char* what) {
    if (n <= size_) return Status::Ok();
    ptr_.reset();
    size_ = 0;
    void* p = nullptr;
    KVSTORE_RETURN_IF_ERROR(CudaCheck(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T)), what));
    ptr_.reset(p);
    size_ = n;
    return Status::Ok();
  }
  Status Upload(const std::vector<T>& host, cudaStream_t stream, const char* what) {
    KVSTORE_RETURN_IF_ERROR(Reserve(host.size(), what));
    if (host.empty()) return Status::Ok();
    return CudaCheck(cudaMemcpyAsync(get(), host.data(), host.size() * sizeof(T),
                                     cudaMemcpyHostToDevice, stream),
                     what);
  }

 private:
  std::unique_ptr<void, CudaFree> ptr_;
  size_t size_ = 0;
};

struct StreamDestroy {
  void operator()(cudaStream_t s) const { cudaStreamDestroy(s); }
};
using StreamPtr = std::unique_ptr<std::remove_pointer_t<cudaStream_t>, StreamDestroy>;

struct CublasDestroy {
  void operator()(cublasHandle_t h) const { cublasDestroy(h); }
};
using CublasPtr = std::unique_ptr<std::remove_pointer_t<cublasHandle_t>, CublasDestroy>;

struct DeviceLayer {
  DeviceArray<float> attn_norm, wq, wk, wv, wo, mlp_norm, w_gate, w_up, w_down;
};

class CudaForwardImpl final : public CudaForward {
 public:
  CudaForwardImpl(const ModelConfig& config, const kernels::KvCacheShape& shape)
      : config_(config), shape_(shape) {}

  Status Init(const ModelWeights& w) {
    cudaStream_t s = nullptr;
    KVSTORE_RETURN_IF_ERROR(
        CudaCheck(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream create"));
    stream_.reset(s);
    cublasHandle_t h = nullptr;
    const cublasStatus_t cs = cublasCreate(&h);
    if (cs != CUBLAS_STATUS_SUCCESS)
      return Status::Internal(std::string("model cuda: cublasCreate: ") +
                              cublasGetStatusString(cs));
    cublas_.reset(h);
    KVSTORE_RETURN_IF_ERROR(embed_.Upload(w.embed, stream(), "upload embed"));
    KVSTORE_RETURN_IF_ERROR(final_norm_.Upload(w.final_norm, stream(), "upload final_norm"));
    KVSTORE_RETURN_IF_ERROR(lm_head_.Upload(w.lm_head, stream(), "upload lm_head"));
    layers_.resize(w.layers.size());
    for (size_t l = 0; l < w.layers.size(); ++l) {
      const LayerWeights& hw = w.layers[l];
      DeviceLayer& dw = layers_[l];
      KVSTORE_RETURN_IF_ERROR(dw.attn_norm.Upload(hw.attn_norm, stream(), "upload attn_norm"));
      KVSTORE_RETURN_IF_ERROR(dw.wq.Upload(hw.wq, stream(), "upload wq"));
      KVSTORE_RETURN_IF_ERROR(dw.wk.Upload(hw.wk, stream(), "upload wk"));
      KVSTORE_RETURN_IF_ERROR(dw.wv.Upload(hw.wv, stream(), "upload wv"));
      KVSTORE_RETURN_IF_ERROR(dw.wo.Upload(hw.wo, stream(), "upload wo"));
      KVSTORE_RETURN_IF_ERROR(dw.mlp_norm.Upload(hw.mlp_norm, stream(), "upload mlp_norm"));
      KVSTORE_RETURN_IF_ERROR(dw.w_gate.Upload(hw.w_gate, stream(), "upload w_gate"));
      KVSTORE_RETURN_IF_ERROR(dw.w_up.Upload(hw.w_up, stream(), "upload w_up"));
      KVSTORE_RETURN_IF_ERROR(dw.w_down.Upload(hw.w_down, stream(), "upload w_down"));
    }
    // The mirror starts as zeros, like the host cache; Forward uploads every
    // block it reads anyway.
    const size_t cache_elems =
        static_cast<size_t>(kernels::LayerCacheOffset(shape_, shape_.num_layers, 0));
    KVSTORE_RETURN_IF_ERROR(kv_cache_.Reserve(cache_elems, "alloc kv mirror"));
    KVSTORE_RETURN_IF_ERROR(CudaCheck(
        cudaMemsetAsync(kv_cache_.get(), 0, cache_elems * sizeof(float), stream()), "kv memset"));
    // The host vectors passed to Upload must stay alive until the copies finish.
    return CudaCheck(cudaStreamSynchronize(stream()), "weights upload");
  }

  Result<std::vector<std::vector<float>>> Forward(const ForwardBatch& b,
                                                  PagedKvCache& cache) override {
    const ModelConfig& c = config_;
    const int total = b.num_tokens, n_out = b.num_seqs, bs = shape_.block_size;
    const int h = c.hidden_size, qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim,
              f = c.intermediate_size;
    cudaStream_t st = stream();

    // Blocks to sync in (every block attention may read) and out (every block
    // a new token lands in); sorted and unique, since prefix blocks can be
    // shared by several sequences of the batch.
    std::vector<int32_t> in_ids, out_ids;
    for (int32_t id : b.block_tables)
      if (id >= 0) in_ids.push_back(id);
    for (int32_t slot : b.slots) out_ids.push_back(slot / bs);
    for (auto* v : {&in_ids, &out_ids}) {
      std::sort(v->begin(), v->end());
      v->erase(std::unique(v->begin(), v->end()), v->end());
    }
    const int n_in = static_cast<int>(in_ids.size()), n_outb = static_cast<int>(out_ids.size());
    const size_t block_elems = static_cast<size_t>(kernels::PackedBlockElems(shape_));

    KVSTORE_RETURN_IF_ERROR(Reserve(total, n_out, std::max(n_in, n_outb) * block_elems));
    KVSTORE_RETURN_IF_ERROR(d_ids_.Upload(b.ids, st, "upload ids"));
    KVSTORE_RETURN_IF_ERROR(d_pos_.Upload(b.pos, st, "upload positions"));
    KVSTORE_RETURN_IF_ERROR(d_token_seq_.Upload(b.token_seq, st, "upload token_seq"));
    KVSTORE_RETURN_IF_ERROR(d_slots_.Upload(b.slots, st, "upload slots"));
    KVSTORE_RETURN_IF_ERROR(d_tables_.Upload(b.block_tables, st, "upload block tables"));
    KVSTORE_RETURN_IF_ERROR(d_in_ids_.Upload(in_ids, st, "upload sync-in ids"));
    KVSTORE_RETURN_IF_ERROR(d_out_ids_.Upload(out_ids, st, "upload sync-out ids"));

    // Sync point 1: host cache -> device mirror for the blocks read.
    staging_.resize(std::max(n_in, n_outb) * block_elems);
    KVSTORE_RETURN_IF_ERROR(
        KernelCheck(kernels::KvPackCpu(cache.data(), in_ids.data(), n_in, staging_.data(), shape_),
                    "kv pack (host)"));
    KVSTORE_RETURN_IF_ERROR(
        CudaCheck(cudaMemcpyAsync(d_staging_.get(), staging_.data(),
                                  n_in * block_elems * sizeof(float), cudaMemcpyHostToDevice, st),
                  "kv sync in"));
    KVSTORE_RETURN_IF_ERROR(KernelCheck(
        kernels::KvUnpackCuda(d_staging_.get(), d_in_ids_.get(), n_in, kv_cache_.get(), shape_, st),
        "kv unpack (device)"));

    float *x = d_x_.get(), *xn = d_xn_.get(), *q = d_q_.get(), *k = d_k_.get(), *v = d_v_.get(),
          *attn = d_attn_.get(), *proj = d_proj_.get(), *gate = d_gate_.get(), *up = d_up_.get();
    KVSTORE_RETURN_IF_ERROR(KernelCheck(
        kernels::EmbeddingCuda(embed_.get(), d_ids_.get(), x, total, c.vocab_size, h, st),
        "embedding"));
    const kernels::PagedAttentionParams ap =
        AttentionParams(c, total, bs, shape_.num_blocks, b.max_blocks);
    cublasHandle_t hb = cublas_.get();

    for (int l = 0; l < c.num_layers; ++l) {
      const DeviceLayer& w = layers_[l];
      float* k_cache = kv_cache_.get() + kernels::LayerCacheOffset(shape_, l, 0);
      float* v_cache = kv_cache_.get() + kernels::LayerCacheOffset(shape_, l, 1);
      KVSTORE_RETURN_IF_ERROR(
          KernelCheck(kernels::RmsNormCuda(x, w.attn_norm.get(), xn, total, h, c.rms_norm_eps, st),
                      "attn norm"));
      KVSTORE_RETURN_IF_ERROR(
          KernelCheck(kernels::MatmulCuda(xn, w.wq.get(), q, total, qd, h, hb, st), "q_proj"));
      KVSTORE_RETURN_IF_ERROR(
          KernelCheck(kernels::MatmulCuda(xn, w.wk.get(), k, total, kvd, h, hb, st), "k_proj"));
      KVSTORE_RETURN_IF_ERROR(
          KernelCheck(kernels::MatmulCuda(xn, w.wv.get(), v, total, kvd, h, hb, st), "v_proj"));
      KVSTORE_RETURN_IF_ERROR(KernelCheck(
          kernels::RopeCuda(q, d_pos_.get(), total, c.num_heads, c.head_dim, RopeParamsOf(c), st),
          "rope q"));
      KVSTORE_RETURN_IF_ERROR(KernelCheck(kernels::RopeCuda(k, d_pos_.get(), total, c.num_kv_heads,
                                                            c.head_dim, RopeParamsOf(c), st),
                                          "rope k"));
      KVSTORE_RETURN_IF_ERROR(
          KernelCheck(kernels::KvWriteCuda(k, v, d_slots_.get(), k_cache, v_cache, total,
                                           shape_.num_blocks, bs, c.num_kv_heads, c.head_dim, st),
                      "kv write"));
      KVSTORE_RETURN_IF_ERROR(
          KernelCheck(kernels::PagedAttentionCuda(q, k_cache, v_cache, d_tables_.get(),
                                                  d_token_seq_.get(), d_pos_.get(), attn, ap, st),
                      "attention"));
      KVSTORE_RETURN_IF_ERROR(
          KernelCheck(kernels::MatmulCuda(attn, w.wo.get(), proj, total, h, qd, hb, st), "o_proj"));
      KVSTORE_RETURN_IF_ERROR(
          KernelCheck(kernels::ResidualAddCuda(x, proj, int64_t(total) * h, st), "residual"));
      KVSTORE_RETURN_IF_ERROR(KernelCheck(
          kernels::RmsNormCuda(x, w.mlp_norm.get(), xn, total, h, c.rms_norm_eps, st), "mlp norm"));
      KVSTORE_RETURN_IF_ERROR(KernelCheck(
          kernels::MatmulCuda(xn, w.w_gate.get(), gate, total, f, h, hb, st), "gate_proj"));
      KVSTORE_RETURN_IF_ERROR(
          KernelCheck(kernels::MatmulCuda(xn, w.w_up.get(), up, total, f, h, hb, st), "up_proj"));
      KVSTORE_RETURN_IF_ERROR(
          KernelCheck(kernels::SwiGluCuda(gate, up, gate, int64_t(total) * f, st), "swiglu"));
      KVSTORE_RETURN_IF_ERROR(KernelCheck(
          kernels::MatmulCuda(gate, w.w_down.get(), proj, total, h, f, hb, st), "down_proj"));
      KVSTORE_RETURN_IF_ERROR(
          KernelCheck(kernels::ResidualAddCuda(x, proj, int64_t(total) * h, st), "residual"));
    }

    // Final norm and LM head on the last position of each sequence only.
    float* last = d_last_.get();
    for (int i = 0; i < n_out; ++i)
      KVSTORE_RETURN_IF_ERROR(
          CudaCheck(cudaMemcpyAsync(last + size_t(i) * h, x + size_t(b.last_row[i]) * h,
                                    h * sizeof(float), cudaMemcpyDeviceToDevice, st),
                    "gather last rows"));
    KVSTORE_RETURN_IF_ERROR(KernelCheck(
        kernels::RmsNormCuda(last, final_norm_.get(), last, n_out, h, c.rms_norm_eps, st),
        "final norm"));
    KVSTORE_RETURN_IF_ERROR(KernelCheck(
        kernels::MatmulCuda(last, lm_head_.get(), d_logits_.get(), n_out, c.vocab_size, h, hb, st),
        "lm_head"));
    std::vector<float> logits(size_t(n_out) * c.vocab_size);
    KVSTORE_RETURN_IF_ERROR(
        CudaCheck(cudaMemcpyAsync(logits.data(), d_logits_.get(), logits.size() * sizeof(float),
                                  cudaMemcpyDeviceToHost, st),
                  "logits to host"));

    // Sync point 2: device mirror -> host cache for the blocks written. The
    // host cache is touched only after the whole step succeeded.
    KVSTORE_RETURN_IF_ERROR(KernelCheck(kernels::KvPackCuda(kv_cache_.get(), d_out_ids_.get(),
                                                            n_outb, d_staging_.get(), shape_, st),
                                        "kv pack (device)"));
    KVSTORE_RETURN_IF_ERROR(
        CudaCheck(cudaMemcpyAsync(staging_.data(), d_staging_.get(),
                                  n_outb * block_elems * sizeof(float), cudaMemcpyDeviceToHost, st),
                  "kv sync out"));
    KVSTORE_RETURN_IF_ERROR(CudaCheck(cudaStreamSynchronize(st), "forward"));
    KVSTORE_RETURN_IF_ERROR(KernelCheck(
        kernels::KvUnpackCpu(staging_.data(), out_ids.data(), n_outb, cache.data(), shape_),
        "kv unpack (host)"));

    std::vector<std::vector<float>> out(n_out);
    for (int i = 0; i < n_out; ++i)
      out[i].assign(logits.begin() + size_t(i) * c.vocab_size,
                    logits.begin() + size_t(i + 1) * c.vocab_size);
    return out;
  }

 private:
  cudaStream_t stream() const { return stream_.get(); }

  Status Reserve(int total, int n_out, size_t staging_elems) {
    const ModelConfig& c = config_;
    const size_t t = static_cast<size_t>(total);
    const size_t h = c.hidden_size, qd = size_t(c.num_heads) * c.head_dim,
                 kvd = size_t(c.num_kv_heads) * c.head_dim, f = c.intermediate_size;
    KVSTORE_RETURN_IF_ERROR(d_x_.Reserve(t * h, "alloc x"));
    KVSTORE_RETURN_IF_ERROR(d_xn_.Reserve(t * h, "alloc xn"));
    KVSTORE_RETURN_IF_ERROR(d_q_.Reserve(t * qd, "alloc q"));
    KVSTORE_RETURN_IF_ERROR(d_k_.Reserve(t * kvd, "alloc k"));
    KVSTORE_RETURN_IF_ERROR(d_v_.Reserve(t * kvd, "alloc v"));
    KVSTORE_RETURN_IF_ERROR(d_attn_.Reserve(t * qd, "alloc attn"));
    KVSTORE_RETURN_IF_ERROR(d_proj_.Reserve(t * h, "alloc proj"));
    KVSTORE_RETURN_IF_ERROR(d_gate_.Reserve(t * f, "alloc gate"));
    KVSTORE_RETURN_IF_ERROR(d_up_.Reserve(t * f, "alloc up"));
    KVSTORE_RETURN_IF_ERROR(d_last_.Reserve(size_t(n_out) * h, "alloc last"));
    KVSTORE_RETURN_IF_ERROR(d_logits_.Reserve(size_t(n_out) * c.vocab_size, "alloc logits"));
    return d_staging_.Reserve(staging_elems, "alloc kv staging");
  }

  ModelConfig config_;
  kernels::KvCacheShape shape_;
  // Declared first so they are destroyed last, after every buffer.
  StreamPtr stream_;
  CublasPtr cublas_;
  DeviceArray<float> embed_, final_norm_, lm_head_;
  std::vector<DeviceLayer> layers_;
  DeviceArray<float> kv_cache_;  // [num_layers, 2, num_blocks, block_size, kv_heads, head_dim]
  // Per-step scratch, grown to the largest batch seen.
  DeviceArray<float> d_x_, d_xn_, d_q_, d_k_, d_v_, d_attn_, d_proj_, d_gate_, d_up_, d_last_,
      d_logits_;
  DeviceArray<float> d_staging_;  // [blocks, num_layers, 2, block_size, kv_heads, head_dim]
  DeviceArray<int32_t> d_ids_, d_pos_, d_token_seq_, d_slots_, d_tables_, d_in_ids_, d_out_ids_;
  std::vector<float> staging_;  // host side of d_staging_ (pageable)
};

}  // namespace

Result<std::unique_ptr<CudaForward>> CreateCudaForward(const ModelConfig& config,
                                                       const ModelWeights& weights,
                                                       const kernels::KvCacheShape& cache_shape) {
  // PagedAttentionCuda's limit (kernels/src/cuda/paged_attention.cu); refusing
  // here lets kAuto fall back to the CPU instead of failing on the first step.
  constexpr int kMaxAttentionHeadDim = 256;
  if (config.head_dim > kMaxAttentionHeadDim)
    return Status::Unavailable("model cuda: head_dim " + std::to_string(config.head_dim) +
                               " above the CUDA attention kernel's " +
                               std::to_string(kMaxAttentionHeadDim));
  auto impl = std::make_unique<CudaForwardImpl>(config, cache_shape);
  KVSTORE_RETURN_IF_ERROR(impl->Init(weights));
  return std::unique_ptr<CudaForward>(std::move(impl));
}

}  // namespace kvstore::engine
