#include "kvstore/tiers/host_arena.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <spdlog/spdlog.h>

namespace kvstore::tiers {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kHugePage = 2ull << 20;

uint64_t RoundUp(uint64_t v, uint64_t to) { return (v + to - 1) / to * to; }

}  // namespace

Result<std::unique_ptr<HostArena>> HostArena::Create(const HostArenaOptions& options) {
  if (options.bytes == 0) return Status::InvalidArgument("host arena: size must be > 0");
  const uint64_t size = RoundUp(options.bytes, kPage);

  // Over-map by one huge page and trim, so the region starts 2 MiB-aligned and
  // THP can back it from the first byte.
  const uint64_t mapped = size + kHugePage;
  void* raw = mmap(nullptr, mapped, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) {
    return Status::ResourceExhausted("host arena: mmap of " + std::to_string(size) +
                                     " bytes failed: " + std::strerror(errno));
  }
  const auto start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = RoundUp(start, kHugePage);
  if (aligned > start) munmap(raw, aligned - start);
  const uintptr_t end = aligned + size;
  const uintptr_t mapped_end = start + mapped;
  if (mapped_end > end) munmap(reinterpret_cast<void*>(end), mapped_end - end);
  auto* data = reinterpret_cast<std::byte*>(aligned);

  bool huge = false;
#ifdef MADV_HUGEPAGE
  if (options.huge_pages) huge = madvise(data, size, MADV_HUGEPAGE) == 0;
#endif

  bool locked = false;
  if (options.lock) {
    // mlock also faults every page in, so a successful lock is the pre-fault.
    if (mlock(data, size) == 0) {
      locked = true;
    } else {
      const int err = errno;
      if (options.require_lock) {
        munmap(data, size);
        return Status::ResourceExhausted("host arena: mlock of " + std::to_string(size) +
                                         " bytes failed: " + std::strerror(err));
      }
      spdlog::warn(
          "host arena: mlock of {} bytes failed (errno {}: {}); arena not pinned; RDMA "
          "registration will need on-demand paging or run as root/raise LimitMEMLOCK",
          size, err, std::strerror(err));
    }
  }
  if (options.prefault && !locked) {
    // Writing (not reading) so the kernel allocates real pages, not the zero page.
    volatile auto* p = reinterpret_cast<volatile unsigned char*>(data);
    for (uint64_t off = 0; off < size; off += kPage) p[off] = 0;
  }
  return std::unique_ptr<HostArena>(new HostArena(data, size, locked, huge));
}

HostArena::~HostArena() {
  if (locked_) munlock(data_, size_);
  munmap(data_, size_);
}

}  // namespace kvstore::tiers
