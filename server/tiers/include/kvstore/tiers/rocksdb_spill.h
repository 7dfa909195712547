// RocksDbSpill: the spill tier. Values in a write-once value log, RocksDB as the index.
//
// Layout under SpillOptions::dir:
//   index/              RocksDB: key (32 bytes) -> versioned record (where the value
//                       lives, EntryMeta); WAL on, records are ~100 bytes.
//   values/seg-N.vlog   value segments, appended with O_DIRECT at 4 KiB-aligned
//                       offsets (see ValueLog in src/value_log.h).
//
// Why not values inside RocksDB: with the WAL on, every value byte is written
// twice (WAL, then table or blob file) and db_bench fillseq of 1 MiB values gets
// ~0.6 GB/s on a 2.1 GB/s disk (0.45 with blob files). With the WAL off a Put is
// durable only after a memtable flush, one SST + blob file per flush. Writing the
// value once to our own log and only a small record through RocksDB's WAL keeps
// each byte written once and RocksDB doing what it is good at (a crash-safe,
// ordered index that ForEach can scan without touching values).
//
// Durability ("reached spill"): Put returns OK only after
//   1. every value byte was written to the segment file with direct I/O (so it is
//      in the device, not in a page cache of this process), and then
//   2. the index record was written to RocksDB's WAL (handed to the kernel).
// Such an entry survives kill -9 of the daemon, intact and served after reopen.
// Against power loss or a kernel crash, an entry is durable once Flush() has
// returned after its Put (fdatasync of segments + WAL sync), or at Put return
// with sync_writes = true (costs one fdatasync per Put). The value is written
// before its record, so a record never points at bytes that were not written
// by this process; after a power loss a record may point at bytes the device
// lost, and the checksum catches that (DataLoss, record removed, never served).
// Records whose segment is missing or too short are dropped at Open.
//
// Space: capacity_bytes bounds the live values (4 KiB-rounded). Deleted and
// replaced values leave holes in their segments, which later values of at most
// their size fill before the log grows (so a read-back that swaps a value out
// of spill and another in does not grow the disk); a segment is deleted when
// its last live value goes, and when garbage passes max_garbage_bytes a Put
// also compacts the sealed segment with the least live share (re-appends its
// live values), so disk use stays within capacity + max_garbage_bytes + one
// segment. A hole is reused only after the index no longer points at it; Get
// re-reads the record when the bytes fail their checksum, so a read racing a
// compaction that moved its value follows it instead of dropping the entry.
//
// Thread-safety: as SpillStore: safe for concurrent calls on different keys.
// Value I/O runs outside the internal mutex, so a large Put does not hold up
// Gets of other entries.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "kvstore/tiers/segment_io.h"
#include "kvstore/tiers/spill_store.h"

namespace rocksdb {
class DB;
}

namespace kvstore::tiers {

class ValueLog;
struct SpillRecord;

struct SpillOptions {
  // Directory for index/ and values/; created if missing. Required (no default path).
  std::string dir;
  // Limit on live value bytes (4 KiB-rounded); Put beyond it is ResourceExhausted.
  uint64_t capacity_bytes = 1ull << 30;
  // fdatasync the value and sync the WAL before each Put returns (power-loss
  // durable per Put). Default false: kill -9 durable per Put, Flush() for power loss.
  bool sync_writes = false;
  // O_DIRECT for value files; falls back to buffered I/O where the filesystem refuses.
  bool direct_io = true;
  // Value segment size; a value larger than this gets a segment of its own.
  uint64_t segment_bytes = 64ull << 20;
  // Garbage (dead bytes in segments) allowed before a Put compacts a segment.
  // 0 = max(2 * segment_bytes, capacity_bytes / 4).
  uint64_t max_garbage_bytes = 0;
  // Only segments whose live share is below this are compacted.
  double compact_live_ratio = 0.75;
  // Recompute the XXH3-64 of each value on Put and refuse a mismatch (InvalidArgument).
  bool verify_checksum_on_put = false;
  // RocksDB block cache for the index.
  uint64_t index_cache_bytes = 32ull << 20;
  // The value segments' system calls; null = the real ones. Tests inject disk faults here.
  std::shared_ptr<SegmentIo> segment_io;
  // Free disk space values never take, kept for the index (its log, and what
  // it writes when it reopens after a crash); a Put that would eat into it is
  // ResourceExhausted. ~0 = min(64 MiB, 1/8 of the filesystem).
  uint64_t disk_reserve_bytes = ~0ull;
};

class RocksDbSpill final : public SpillStore {
 public:
  // Opens or creates the store; rebuilds space accounting from the index.
  // Internal (with RocksDB's message) when the index cannot be opened.
  static Result<std::unique_ptr<RocksDbSpill>> Open(const SpillOptions& options);
  ~RocksDbSpill() override;
  RocksDbSpill(const RocksDbSpill&) = delete;
  RocksDbSpill& operator=(const RocksDbSpill&) = delete;

  Status Put(const SpillKey& key, const EntryMeta& meta, std::span<const std::byte> value) override;
  Result<EntryMeta> GetMeta(const SpillKey& key) override;
  Status Get(const SpillKey& key, std::span<std::byte> dst, EntryMeta* meta) override;
  Status Delete(const SpillKey& key) override;
  Status ForEach(const std::function<bool(const SpillKey&, const EntryMeta&)>& fn) override;
  Status Flush() override;
  SpillStats Stats() const override;

  const SpillOptions& options() const { return options_; }

 private:
  explicit RocksDbSpill(const SpillOptions& options);
  Result<SpillRecord> ReadRecord(const SpillKey& key);
  Status WriteRecord(const SpillKey& key, const SpillRecord& record);
  Status Rebuild();
  void MaybeCompact();
  Status CompactSegment(uint64_t segment);

  // An flock on <dir>/kvstored.pid (holding this process's pid) for as long
  // as the store is open, so a second daemon on the directory is told who holds
  // it. First member: released after the index and the values are closed.
  struct DirLock {
    int fd = -1;
    ~DirLock();
  };
  DirLock dir_lock_;
  const SpillOptions options_;
  uint64_t max_garbage_;
  std::unique_ptr<rocksdb::DB> db_;
  std::unique_ptr<ValueLog> log_;

  // Serializes index read-modify-writes and the space accounting below.
  mutable std::mutex mu_;
  uint64_t entries_ = 0;       // GUARDED_BY(mu_)
  uint64_t bytes_ = 0;         // GUARDED_BY(mu_)
  uint64_t stored_bytes_ = 0;  // GUARDED_BY(mu_); live + reserved by Puts in flight
  std::mutex compact_mu_;      // one compaction at a time

  // Statistics only, read by Stats(); relaxed: no other memory is published through them.
  std::atomic<uint64_t> write_bytes_{0}, read_bytes_{0}, puts_{0}, gets_{0}, deletes_{0},
      refused_{0}, checksum_failures_{0}, compacted_bytes_{0};
};

}  // namespace kvstore::tiers
