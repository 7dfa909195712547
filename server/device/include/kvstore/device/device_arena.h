// DeviceArena: one cudaMalloc'd block of GPU memory backing the device tier,
// freed on destruction, with an internal CUDA stream for host<->device copies
// and a dmabuf export so the NIC can register it (see arena_registration.h).
//
// Without a GPU (or in a build without CUDA) Create() returns Unavailable and
// the tier is absent; the daemon logs that once at start.
//
// Thread-safety: data()/size() are immutable. The copy functions share one
// stream and are not thread-safe; one thread (the tier's) issues copies, or
// the caller serializes them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "kvstore/status.h"

struct CUstream_st;  // cudaStream_t without including the CUDA headers

namespace kvstore::device {

// An exported dmabuf fd for [base, base + length); closes the fd on destruction.
// `offset` is where the arena starts inside the exported range (the export is
// widened to page boundaries).
class DmabufHandle {
 public:
  DmabufHandle(int fd, uint64_t offset, size_t length)
      : fd_(fd), offset_(offset), length_(length) {}
  ~DmabufHandle();
  DmabufHandle(const DmabufHandle&) = delete;
  DmabufHandle& operator=(const DmabufHandle&) = delete;

  int fd() const { return fd_; }
  uint64_t offset() const { return offset_; }
  size_t length() const { return length_; }

 private:
  int fd_;
  uint64_t offset_;
  size_t length_;
};

class DeviceArena {
 public:
  // Granularity Create() rounds sizes up to (dmabuf export wants page-aligned
  // ranges, and 2 MiB matches the GPU's large pages).
  static constexpr size_t kAlignment = size_t{2} << 20;

  // InvalidArgument for bytes == 0 or a negative index; Unavailable when there
  // is no GPU, the index does not exist, or the build has no CUDA;
  // ResourceExhausted when cudaMalloc runs out of memory.
  static Result<std::unique_ptr<DeviceArena>> Create(size_t bytes, int device_index = 0);
  ~DeviceArena();
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;

  void* data() const { return ptr_; }  // a device pointer: do not dereference on the host
  size_t size() const { return size_; }
  int device_index() const { return device_index_; }

  // Exports the arena as a dmabuf via cuMemGetHandleForAddressRange, fetched
  // from the driver at run time (nothing links libcuda). Unavailable when the
  // driver or GPU does not support it.
  Result<std::unique_ptr<DmabufHandle>> ExportDmabuf() const;

  // Enqueue a copy on the arena's stream; Synchronize() waits for all of them.
  // InvalidArgument when [offset, offset + len) leaves the arena.
  // REQUIRES: host memory stays valid until Synchronize() returns.
  Status CopyFromHostAsync(uint64_t offset, std::span<const std::byte> src);
  Status CopyToHostAsync(uint64_t offset, std::span<std::byte> dst);
  Status Synchronize();
  // The two above followed by Synchronize().
  Status CopyFromHost(uint64_t offset, std::span<const std::byte> src);
  Status CopyToHost(uint64_t offset, std::span<std::byte> dst);

 private:
  DeviceArena(void* ptr, size_t size, int device_index, CUstream_st* stream)
      : ptr_(ptr), size_(size), device_index_(device_index), stream_(stream) {}
  Status CheckRange(const char* what, uint64_t offset, size_t len) const;

  void* ptr_;
  size_t size_;
  int device_index_;
  CUstream_st* stream_;
};

}  // namespace kvstore::device
