#include "kvstore/tiers/host_arena.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

namespace kvstore::tiers {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kHugePage = 2ull << 20;

uint64_t RoundUp(uint64_t v, uint64_t to) { return (v + to - 1) / to * to; }

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14; older kernels refuse it (EINVAL) and we touch
#endif

// Faults in [data, data + size) for writing.
void FaultIn(std::byte* data, uint64_t size) {
  if (madvise(data, size, MADV_POPULATE_WRITE) == 0) return;
  // Writing (not reading) so the kernel allocates real pages, not the zero page.
  volatile auto* p = reinterpret_cast<volatile unsigned char*>(data);
  for (uint64_t off = 0; off < size; off += kPage) p[off] = 0;
}

// Faults the whole arena in with one thread per core, in huge-page-aligned
// chunks, as ordinary pages: with MADV_HUGEPAGE set before the fault, every
// fault may stall in direct compaction to find a free 2 MiB page (measured on
// 2 vCPUs: 4.7-10.4 s per GiB that way, 1.1 s per GiB as small pages). Huge
// pages are asked for afterwards, and khugepaged collapses the faulted pages
// in the background without a fault on the data path. Returns the threads used.
unsigned FaultInParallel(std::byte* data, uint64_t size) {
  const unsigned threads = static_cast<unsigned>(
      std::clamp<uint64_t>(std::min<uint64_t>(std::thread::hardware_concurrency(), 16), 1,
                           std::max<uint64_t>(1, size / (64ull << 20))));
  const uint64_t chunk = RoundUp((size + threads - 1) / threads, kHugePage);
  std::vector<std::thread> workers;
  for (unsigned t = 1; t < threads; ++t) {
    const uint64_t off = t * chunk;
    if (off >= size) break;
    workers.emplace_back([=] { FaultIn(data + off, std::min(chunk, size - off)); });
  }
  FaultIn(data, std::min(chunk, size));
  for (auto& w : workers) w.join();
  return static_cast<unsigned>(workers.size() + 1);
}

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

  // Fault every page in before anything uses the arena, in parallel, so the
  // data path never takes a fault; then ask for huge pages (see FaultInParallel).
  const auto t0 = std::chrono::steady_clock::now();
  unsigned threads = 0;
  if (options.prefault) threads = FaultInParallel(data, size);
  const auto t1 = std::chrono::steady_clock::now();
  bool huge = false;
#ifdef MADV_HUGEPAGE
  if (options.huge_pages) huge = madvise(data, size, MADV_HUGEPAGE) == 0;
#endif

  bool locked = false;
  if (options.lock) {
    // The pages are in already: mlock only pins them.
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
  const auto t2 = std::chrono::steady_clock::now();
  auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  if (size >= (256ull << 20)) {
    spdlog::info("host arena: {} MiB ready in {} ms (pre-faulted by {} threads in {} ms{})",
                 size >> 20, ms(t2 - t0), threads, ms(t1 - t0),
                 locked ? ", pinned in " + std::to_string(ms(t2 - t1)) + " ms" : ", not pinned");
  }
  return std::unique_ptr<HostArena>(new HostArena(data, size, locked, huge));
}

HostArena::~HostArena() {
  if (locked_) munlock(data_, size_);
  munmap(data_, size_);
}

}  // namespace kvstore::tiers
