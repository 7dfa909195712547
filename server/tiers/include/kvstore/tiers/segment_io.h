// SegmentIo: the system calls the value log makes on its segment files, as an
// interface so a test can put a failing disk under the spill tier (EIO on a
// read, ENOSPC or EIO on a write or a sync) without a failing disk.
//
// Every call returns what the system call would, with the error as a negative
// errno instead of -1 and errno: Pwrite/Pread the bytes moved (>= 0) or
// -errno; Fdatasync/Fallocate 0 or -errno. EINTR is retried by the caller.
//
// Thread-safety: implementations are called from several threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace kvstore::tiers {

class SegmentIo {
 public:
  virtual ~SegmentIo() = default;
  // `segment` is the value log's id of the file behind `fd`, for injectors
  // that fail one segment only.
  virtual int64_t Pwrite(uint64_t segment, int fd, const std::byte* p, uint64_t n,
                         uint64_t offset) = 0;
  virtual int64_t Pread(uint64_t segment, int fd, std::byte* p, uint64_t n, uint64_t offset) = 0;
  virtual int Fdatasync(uint64_t segment, int fd) = 0;
  // Reserves [offset, offset + n) without changing the file size
  // (FALLOC_FL_KEEP_SIZE), so a full disk is found before any byte is written.
  // -EOPNOTSUPP where the filesystem cannot; the caller then writes anyway.
  virtual int Fallocate(uint64_t segment, int fd, uint64_t offset, uint64_t n) = 0;
  // Space left to unprivileged writers on the filesystem holding `dir`, and its
  // size (statvfs), or -errno in `available`.
  struct Space {
    int64_t available = 0;
    uint64_t total = 0;
  };
  virtual Space FreeSpace(const std::string& dir) = 0;
};

// The real calls (pwrite, pread, fdatasync, fallocate). Shared, stateless.
std::shared_ptr<SegmentIo> PosixSegmentIo();

}  // namespace kvstore::tiers
