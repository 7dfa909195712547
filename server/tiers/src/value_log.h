// ValueLog: the write-once files that hold spilled values.
//
// Values are written to segment files (`<dir>/seg-<id>.vlog`) at 4 KiB-aligned
// offsets with direct I/O, so each byte is written to disk once and no page
// cache is spent on bytes the host arena already caches. A released value's
// extent becomes a hole that a later value of at most its size fills, so a
// value deleted and another written (a read-back swapping with a demotion on a
// full spill tier) does not grow the disk; only a value that fits no hole
// extends the log. A segment is deleted when its last live value is released,
// and RocksDbSpill compacts mostly-dead segments by re-appending their live values.
// The index (where each key lives) is RocksDbSpill's, not the log's.
//
// Thread-safety: all methods are safe to call concurrently. Appends reserve
// space under a mutex and write outside it; readers hold the segment open, so a
// segment deleted during a read stays readable until the read ends.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kvstore/status.h"
#include "kvstore/tiers/segment_io.h"
#include "spill_record.h"

namespace kvstore::tiers {

inline constexpr uint64_t kAutoReserve = ~0ull;

struct ValueLogOptions {
  std::string dir;                       // created if missing; required
  uint64_t segment_bytes = 64ull << 20;  // a segment is sealed past this size
  bool direct_io = true;                 // O_DIRECT; falls back to buffered where refused
  std::shared_ptr<SegmentIo> io;         // the segment files' system calls; null = PosixSegmentIo()
  // Free space on the disk that growing the log never takes, so the index
  // beside it can always write its log and recover at the next open.
  // kAutoReserve = min(64 MiB, 1/8 of the filesystem).
  uint64_t reserve_bytes = kAutoReserve;
};

class ValueLog {
 public:
  // Opens the segments found in dir, sealed and with nothing live; appends go
  // to a new segment. The owner then Adopt()s every location its index still
  // references and calls DropUnreferenced().
  static Result<std::unique_ptr<ValueLog>> Open(const ValueLogOptions& options);
  ~ValueLog();
  ValueLog(const ValueLog&) = delete;
  ValueLog& operator=(const ValueLog&) = delete;

  // Writes `value` (zero-padded to 4 KiB) at the head; with `sync`, fdatasync
  // before returning. The bytes count as live until Release. ResourceExhausted
  // when the disk is full (ENOSPC), Internal on any other write error; either
  // names the segment, offset and errno, and nothing is stored.
  // With `fill_holes`, the value goes into the first dead extent of any
  // segment that holds it (space freed by Release) before the log grows.
  Result<SpillLocation> Append(std::span<const std::byte> value, bool sync, bool fill_holes = true);
  // Reads dst.size() bytes from the start of `loc`. DataLoss on a short read
  // (the value is not there); Internal, naming the segment, offset and errno,
  // when the disk fails the read (the value may be intact: keep its record).
  // REQUIRES: dst.size() <= loc.stored_bytes.
  Status Read(const SpillLocation& loc, std::span<std::byte> dst);
  // The bytes at `loc` are dead and may be overwritten by a later Append;
  // deletes the segment when nothing live is left. REQUIRES: no record that a
  // reader may still follow points at `loc` (see RocksDbSpill::Get's re-check).
  void Release(const SpillLocation& loc);
  // Counts `loc` as live. False when its segment is missing or too short to
  // hold it (the index entry is then stale and must go).
  bool Adopt(const SpillLocation& loc);
  // Deletes the segments nothing live references.
  void DropUnreferenced();
  // fdatasync every segment written since the last Sync.
  Status Sync();

  // Size of the segment's file, or nullopt when no such segment is open.
  std::optional<uint64_t> SegmentSize(uint64_t segment) const;
  // The sealed segment with the least live share if that share is below
  // `max_live_ratio`; nullopt otherwise.
  std::optional<uint64_t> PickVictim(double max_live_ratio) const;
  uint64_t disk_bytes() const;
  uint64_t live_bytes() const;
  // False once the directory refused O_DIRECT.
  bool direct_io() const { return direct_io_; }

 private:
  struct Segment;
  explicit ValueLog(const ValueLogOptions& options);
  Result<std::shared_ptr<Segment>> NewSegmentLocked();
  std::shared_ptr<Segment> Find(uint64_t id) const;
  uint64_t ReserveFor(uint64_t filesystem_bytes) const;
  // ResourceExhausted when growing the log by `stored` would eat into the reserve.
  Status CheckHeadroom(uint64_t stored);
  void AddHoleLocked(Segment& seg, uint64_t offset, uint64_t len);
  std::optional<SpillLocation> TakeHoleLocked(uint64_t stored);
  void EraseSegmentLocked(std::map<uint64_t, std::shared_ptr<Segment>>::iterator it);

  const ValueLogOptions options_;
  const std::shared_ptr<SegmentIo> io_;
  std::atomic<bool> direct_io_;
  mutable std::mutex mu_;
  std::map<uint64_t, std::shared_ptr<Segment>> segments_;  // GUARDED_BY(mu_)
  std::shared_ptr<Segment> active_;                        // GUARDED_BY(mu_)
  uint64_t next_id_ = 1;                                   // GUARDED_BY(mu_)
  uint64_t disk_bytes_ = 0;                                // GUARDED_BY(mu_)
  uint64_t live_bytes_ = 0;                                // GUARDED_BY(mu_)
  uint64_t hole_bytes_ = 0;  // GUARDED_BY(mu_); dead bytes Append can fill
};

}  // namespace kvstore::tiers
