// HostArena: the one region of host memory that holds the host tier's values.
//
// Reserved once at start (`--memory SIZE`) and never resized: anonymous mmap,
// aligned to 2 MiB and advised for transparent huge pages, pre-faulted so the
// first insert into a page does not pay the page fault (fresh pages take memcpy
// at ~2 GB/s instead of 11+), and mlock'ed when the process may lock that much.
// The arena is the unit a transport registers with the NIC once (one verbs
// memory region); entries are offsets inside it handed out by SlabAllocator.
//
// When mlock fails (a non-root service gets 8 MiB of RLIMIT_MEMLOCK) the arena
// logs one warning and runs unpinned: correct, but RDMA registration then needs
// on-demand paging, or the daemon must run as root / with a raised LimitMEMLOCK.
//
// Thread-safety: immutable after Create(); the bytes are the caller's to
// synchronize (the Store owns which thread writes which slot).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "kvstore/status.h"

namespace kvstore::tiers {

struct HostArenaOptions {
  // Bytes to reserve; rounded up to a multiple of 4 KiB.
  uint64_t bytes = 0;  // REQUIRED: > 0 (kvstored passes StoreOptions::memory_bytes, --memory)
  // madvise(MADV_HUGEPAGE) on the region (transparent huge pages).
  bool huge_pages = true;
  // Touch every page once at Create() so later copies hit warm memory.
  bool prefault = true;
  // mlock the region; on failure warn once and continue unpinned.
  bool lock = true;
  // When true, a failed mlock is an error (ResourceExhausted) instead of a warning.
  bool require_lock = false;
};

class HostArena {
 public:
  // InvalidArgument for bytes == 0; ResourceExhausted when mmap fails.
  static Result<std::unique_ptr<HostArena>> Create(const HostArenaOptions& options);
  ~HostArena();
  HostArena(const HostArena&) = delete;
  HostArena& operator=(const HostArena&) = delete;

  std::byte* data() const { return data_; }
  uint64_t size() const { return size_; }
  std::span<std::byte> bytes() const { return {data_, static_cast<size_t>(size_)}; }
  // True when mlock succeeded: the pages are pinned and registrable without ODP.
  bool locked() const { return locked_; }
  // True when MADV_HUGEPAGE was accepted (THP may still back only part of it).
  bool huge_pages() const { return huge_pages_; }

 private:
  HostArena(std::byte* data, uint64_t size, bool locked, bool huge_pages)
      : data_(data), size_(size), locked_(locked), huge_pages_(huge_pages) {}

  std::byte* data_;
  uint64_t size_;
  bool locked_;
  bool huge_pages_;
};

}  // namespace kvstore::tiers
