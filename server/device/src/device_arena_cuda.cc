// The CUDA path of the device tier: compiled when the build has CUDA, and
// linked against the CUDA runtime only (the driver is reached at run time).
#include <cuda.h>  // driver types for the run-time fetched entry point; not linked
#include <cuda_runtime_api.h>
#include <unistd.h>

#include <string>

#include "kvstore/device/device_arena.h"
#include "kvstore/device/gpu_probe.h"

namespace kvstore::device {
namespace {

std::string CudaErrorText(cudaError_t e) {
  return std::to_string(static_cast<int>(e)) + " (" + cudaGetErrorString(e) + ")";
}

// A failed runtime call leaves a sticky "last error"; clear it so a later,
// unrelated check does not report it again.
Status CudaStatus(cudaError_t e, const std::string& where) {
  if (e == cudaSuccess) return Status::Ok();
  (void)cudaGetLastError();
  std::string m = where + " failed: " + CudaErrorText(e);
  if (e == cudaErrorMemoryAllocation) return Status::ResourceExhausted(std::move(m));
  return Status::Internal(std::move(m));
}

// Makes `index` the calling thread's current device for a scope, then restores.
class DeviceGuard {
 public:
  explicit DeviceGuard(int index) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    if (previous_ != index) status_ = cudaSetDevice(index);
  }
  ~DeviceGuard() {
    if (previous_ >= 0) (void)cudaSetDevice(previous_);
  }
  cudaError_t status() const { return status_; }

 private:
  int previous_ = -1;
  cudaError_t status_ = cudaSuccess;
};

}  // namespace

bool BuiltWithCuda() { return true; }

GpuProbe ProbeGpu() {
  GpuProbe probe;
  int count = 0;
  if (cudaError_t e = cudaGetDeviceCount(&count); e != cudaSuccess) {
    (void)cudaGetLastError();
    probe.reason = "no GPU: cudaGetDeviceCount returned " + CudaErrorText(e);
    return probe;
  }
  if (count <= 0) {
    probe.reason = "no GPU: cudaGetDeviceCount found 0 devices";
    return probe;
  }
  std::string names;
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaError_t e = cudaGetDeviceProperties(&prop, i); e != cudaSuccess) {
      (void)cudaGetLastError();
      probe.reason =
          "no GPU: cudaGetDeviceProperties(" + std::to_string(i) + ") returned " + CudaErrorText(e);
      return probe;
    }
    names += (i ? ", " : "") + std::string(prop.name);
  }
  probe.device_count = count;
  probe.reason = std::to_string(count) + (count == 1 ? " GPU: " : " GPUs: ") + names;
  return probe;
}

DmabufHandle::~DmabufHandle() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<DeviceArena>> DeviceArena::Create(size_t bytes, int device_index) {
  if (bytes == 0 || device_index < 0) {
    return Status::InvalidArgument("device arena: need bytes > 0 and device_index >= 0");
  }
  if (bytes > SIZE_MAX - kAlignment) {
    return Status::InvalidArgument("device arena: size " + std::to_string(bytes) + " too large");
  }
  const GpuProbe probe = ProbeGpu();
  if (!probe.available()) return Status::Unavailable("device arena: " + probe.reason);
  if (device_index >= probe.device_count) {
    return Status::Unavailable("device arena: GPU " + std::to_string(device_index) +
                               " does not exist (" + probe.reason + ")");
  }
  const size_t size = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  const std::string where = "device arena on GPU " + std::to_string(device_index) + ": ";
  DeviceGuard guard(device_index);
  KVSTORE_RETURN_IF_ERROR(CudaStatus(guard.status(), where + "cudaSetDevice"));
  void* ptr = nullptr;
  KVSTORE_RETURN_IF_ERROR(
      CudaStatus(cudaMalloc(&ptr, size), where + "cudaMalloc(" + std::to_string(size) + ")"));
  cudaStream_t stream = nullptr;
  if (Status s = CudaStatus(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking),
                            where + "cudaStreamCreateWithFlags");
      !s.ok()) {
    (void)cudaFree(ptr);
    return s;
  }
  return std::unique_ptr<DeviceArena>(new DeviceArena(ptr, size, device_index, stream));
}

DeviceArena::~DeviceArena() {
  DeviceGuard guard(device_index_);
  if (stream_ != nullptr) {
    (void)cudaStreamSynchronize(stream_);
    (void)cudaStreamDestroy(stream_);
  }
  if (ptr_ != nullptr) (void)cudaFree(ptr_);
}

Result<std::unique_ptr<DmabufHandle>> DeviceArena::ExportDmabuf() const {
  using GetHandleFn =
      CUresult (*)(void*, CUdeviceptr, size_t, CUmemRangeHandleType, unsigned long long);
  void* fn = nullptr;
  cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
  // 11.7 is the first driver with the symbol; ask for that version of it.
  cudaError_t e = cudaGetDriverEntryPointByVersion("cuMemGetHandleForAddressRange", &fn, 11070,
                                                   cudaEnableDefault, &found);
  if (e != cudaSuccess || found != cudaDriverEntryPointSuccess || fn == nullptr) {
    (void)cudaGetLastError();
    return Status::Unavailable(
        "device arena: cuMemGetHandleForAddressRange not available from the driver (" +
        (e != cudaSuccess ? CudaErrorText(e) : "query result " + std::to_string(found)) + ")");
  }
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto addr = reinterpret_cast<uintptr_t>(ptr_);
  const uintptr_t base = addr & ~(page - 1);
  const uint64_t offset = addr - base;
  const size_t length = (offset + size_ + page - 1) / page * page;
  int fd = -1;
  DeviceGuard guard(device_index_);
  CUresult r = reinterpret_cast<GetHandleFn>(fn)(&fd, static_cast<CUdeviceptr>(base), length,
                                                 CU_MEM_RANGE_HANDLE_TYPE_DMA_BUF_FD, 0);
  if (r != CUDA_SUCCESS || fd < 0) {
    return Status::Unavailable("device arena on GPU " + std::to_string(device_index_) +
                               ": cuMemGetHandleForAddressRange(DMA_BUF_FD, " +
                               std::to_string(length) + " bytes) failed: CUresult " +
                               std::to_string(static_cast<int>(r)) +
                               " (dmabuf needs an open kernel module and Linux >= 5.12)");
  }
  return std::make_unique<DmabufHandle>(fd, offset, length);
}

Status DeviceArena::CheckRange(const char* what, uint64_t offset, size_t len) const {
  if (len == 0 || offset > size_ || len > size_ - offset) {
    return Status::InvalidArgument(std::string("device arena ") + what + ": range [" +
                                   std::to_string(offset) + ", +" + std::to_string(len) +
                                   ") outside the arena of " + std::to_string(size_) + " bytes");
  }
  return Status::Ok();
}

Status DeviceArena::CopyFromHostAsync(uint64_t offset, std::span<const std::byte> src) {
  KVSTORE_RETURN_IF_ERROR(CheckRange("copy from host", offset, src.size()));
  DeviceGuard guard(device_index_);
  return CudaStatus(cudaMemcpyAsync(static_cast<std::byte*>(ptr_) + offset, src.data(), src.size(),
                                    cudaMemcpyHostToDevice, stream_),
                    "device arena: cudaMemcpyAsync(host->GPU " + std::to_string(device_index_) +
                        ", " + std::to_string(src.size()) + " bytes)");
}

Status DeviceArena::CopyToHostAsync(uint64_t offset, std::span<std::byte> dst) {
  KVSTORE_RETURN_IF_ERROR(CheckRange("copy to host", offset, dst.size()));
  DeviceGuard guard(device_index_);
  return CudaStatus(cudaMemcpyAsync(dst.data(), static_cast<const std::byte*>(ptr_) + offset,
                                    dst.size(), cudaMemcpyDeviceToHost, stream_),
                    "device arena: cudaMemcpyAsync(GPU " + std::to_string(device_index_) +
                        "->host, " + std::to_string(dst.size()) + " bytes)");
}

Status DeviceArena::Synchronize() {
  DeviceGuard guard(device_index_);
  return CudaStatus(cudaStreamSynchronize(stream_), "device arena: cudaStreamSynchronize(GPU " +
                                                        std::to_string(device_index_) + ")");
}

Status DeviceArena::CopyFromHost(uint64_t offset, std::span<const std::byte> src) {
  KVSTORE_RETURN_IF_ERROR(CopyFromHostAsync(offset, src));
  return Synchronize();
}

Status DeviceArena::CopyToHost(uint64_t offset, std::span<std::byte> dst) {
  KVSTORE_RETURN_IF_ERROR(CopyToHostAsync(offset, dst));
  return Synchronize();
}

}  // namespace kvstore::device
