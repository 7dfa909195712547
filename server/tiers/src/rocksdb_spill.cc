#include "kvstore/tiers/rocksdb_spill.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <vector>

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <spdlog/spdlog.h>
#include <xxhash.h>

#include "spill_record.h"
#include "value_log.h"

namespace kvstore::tiers {
namespace {

constexpr uint64_t kAlign = 4096;
constexpr uint64_t kMinFreeAtOpen = 1ull << 20;
uint64_t RoundUp(uint64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

// The index key: the 32 key bytes for the default namespace (the format of
// data dirs written before namespaces), then 4 bytes of namespace (big endian)
// for any other.
class IndexKey {
 public:
  explicit IndexKey(const SpillKey& k) {
    std::memcpy(b_.data(), k.key.bytes.data(), Key::kSize);
    if (k.ns != kDefaultNamespace) {
      for (int i = 0; i < 4; ++i) b_[Key::kSize + i] = static_cast<char>(k.ns >> (24 - 8 * i));
      n_ = Key::kSize + 4;
    }
  }
  operator rocksdb::Slice() const { return {b_.data(), n_}; }  // NOLINT

 private:
  std::array<char, Key::kSize + 4> b_{};
  size_t n_ = Key::kSize;
};

// nullopt for an index key of neither form.
std::optional<SpillKey> ParseIndexKey(const rocksdb::Slice& raw) {
  if (raw.size() != Key::kSize && raw.size() != Key::kSize + 4) return std::nullopt;
  Key key;
  std::memcpy(key.bytes.data(), raw.data(), Key::kSize);
  NamespaceId ns = kDefaultNamespace;
  for (size_t i = Key::kSize; i < raw.size(); ++i) {
    ns = (ns << 8) | static_cast<uint8_t>(raw.data()[i]);
  }
  return SpillKey(key, ns);
}

Status FromRocks(const rocksdb::Status& s, const char* where) {
  if (s.ok()) return Status::Ok();
  if (s.IsNotFound()) return Status::NotFound(std::string(where) + ": not found");
  if (s.IsCorruption()) return Status::DataLoss(std::string(where) + ": " + s.ToString());
  if (s.IsNoSpace()) return Status::ResourceExhausted(std::string(where) + ": " + s.ToString());
  return Status::Internal(std::string(where) + ": " + s.ToString());
}

std::string ShortHex(const SpillKey& sk) {
  const Key& key = sk.key;
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < 8; ++i) {
    const auto b = static_cast<uint8_t>(key.bytes[i]);
    s.push_back(kDigits[b >> 4]);
    s.push_back(kDigits[b & 15]);
  }
  if (sk.ns != kDefaultNamespace) s += " (namespace " + std::to_string(sk.ns) + ")";
  return s;
}

struct FreeDeleter {
  void operator()(std::byte* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<std::byte, FreeDeleter>;
AlignedBuffer AllocAligned(uint64_t bytes) {
  return AlignedBuffer(static_cast<std::byte*>(std::aligned_alloc(kAlign, RoundUp(bytes + 1))));
}

// Takes <dir>/kvstored.pid with flock and writes our pid into it. Unavailable,
// naming the holder's pid, when another process (another kvstored) holds it.
Status LockDir(const std::string& dir, int* fd_out) {
  const std::string path = dir + "/kvstored.pid";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return Status::Internal("spill: open " + path + ": " + std::strerror(errno) +
                            "; check the directory's permissions and disk");
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[32] = {};
    const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
    ::close(fd);
    std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    if (err == EWOULDBLOCK) {
      return Status::Unavailable(
          "data dir " + dir + " is held by another kvstored" +
          (holder.empty() ? std::string(" (pid unknown)") : " (pid " + holder + ")") +
          "; stop that daemon (or wait for its shutdown to finish) or give this one another "
          "--data-dir");
    }
    return Status::Internal("spill: lock " + path + ": " + std::strerror(err));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    spdlog::warn("spill: could not write our pid into {}: {}", path, std::strerror(errno));
  }
  *fd_out = fd;
  return Status::Ok();
}

}  // namespace

RocksDbSpill::DirLock::~DirLock() {
  if (fd >= 0) ::close(fd);  // releases the flock
}

RocksDbSpill::RocksDbSpill(const SpillOptions& options)
    : options_(options),
      max_garbage_(options.max_garbage_bytes != 0
                       ? options.max_garbage_bytes
                       : std::max(2 * options.segment_bytes, options.capacity_bytes / 4)) {}

RocksDbSpill::~RocksDbSpill() {
  if (db_ && log_) {
    Status s = Flush();
    if (!s.ok()) spdlog::error("spill close: flush failed: {}", s.ToString());
  }
}

Result<std::unique_ptr<RocksDbSpill>> RocksDbSpill::Open(const SpillOptions& options) {
  if (options.dir.empty()) return Status::InvalidArgument("spill: dir is required");
  std::error_code ec;
  std::filesystem::create_directories(options.dir + "/index", ec);
  if (ec) return Status::Internal("spill: create " + options.dir + ": " + ec.message());

  std::unique_ptr<RocksDbSpill> spill(new RocksDbSpill(options));
  KVSTORE_RETURN_IF_ERROR(LockDir(options.dir, &spill->dir_lock_.fd));
  // RocksDB aborts (an assertion in its file writer) when it hits a full disk
  // while recovering its log at open; the value log keeps a reserve free so
  // that cannot come from us, and a disk filled by something else is refused here.
  std::shared_ptr<SegmentIo> io = options.segment_io ? options.segment_io : PosixSegmentIo();
  if (const SegmentIo::Space space = io->FreeSpace(options.dir);
      space.available >= 0 && static_cast<uint64_t>(space.available) < kMinFreeAtOpen) {
    return Status::ResourceExhausted(
        "spill: the disk of " + options.dir + " is full (" + std::to_string(space.available >> 10) +
        " KiB free; opening the index needs " + std::to_string(kMinFreeAtOpen >> 10) +
        " KiB to recover its log); free space on that "
        "disk, then start again");
  }
  rocksdb::Options ro;
  ro.create_if_missing = true;
  // Records are ~100 bytes: no need to preallocate log space (which fails first on a full disk),
  // nor to write a table file from the recovered log before serving.
  ro.allow_fallocate = false;
  ro.avoid_flush_during_recovery = true;
  ro.write_buffer_size = 16ull << 20;
  ro.max_open_files = 512;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.index_cache_bytes);
  // Put looks up the previous record of every key, mostly absent: a filter answers those.
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  ro.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  rocksdb::DB* db = nullptr;
  KVSTORE_RETURN_IF_ERROR(
      FromRocks(rocksdb::DB::Open(ro, options.dir + "/index", &db), "spill: open index"));
  spill->db_.reset(db);

  KVSTORE_ASSIGN_OR_RETURN(spill->log_,
                           ValueLog::Open({options.dir + "/values", options.segment_bytes,
                                           options.direct_io, options.segment_io}));
  KVSTORE_RETURN_IF_ERROR(spill->Rebuild());
  return spill;
}

Status RocksDbSpill::Rebuild() {
  std::vector<std::string> stale;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto rec = DecodeSpillRecord(it->value().ToStringView());
    if (!ParseIndexKey(it->key()) || !rec.ok() || !log_->Adopt(rec->location)) {
      stale.push_back(it->key().ToString());
      continue;
    }
    ++entries_;
    bytes_ += rec->meta.size;
    stored_bytes_ += rec->location.stored_bytes;
  }
  KVSTORE_RETURN_IF_ERROR(FromRocks(it->status(), "spill: scan index"));
  it.reset();
  for (const std::string& k : stale) {
    KVSTORE_RETURN_IF_ERROR(
        FromRocks(db_->Delete(rocksdb::WriteOptions(), k), "spill: drop stale"));
  }
  if (!stale.empty()) {
    spdlog::warn("spill open: dropped {} index records whose values were not on disk",
                 stale.size());
  }
  log_->DropUnreferenced();
  spdlog::info("spill open: {} entries, {} bytes in {}", entries_, bytes_, options_.dir);
  return Status::Ok();
}

Result<SpillRecord> RocksDbSpill::ReadRecord(const SpillKey& key) {
  std::string raw;
  KVSTORE_RETURN_IF_ERROR(
      FromRocks(db_->Get(rocksdb::ReadOptions(), IndexKey(key), &raw), "spill"));
  return DecodeSpillRecord(raw);
}

Status RocksDbSpill::WriteRecord(const SpillKey& key, const SpillRecord& record) {
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync_writes;
  return FromRocks(db_->Put(wo, IndexKey(key), EncodeSpillRecord(record)), "spill: index put");
}

Status RocksDbSpill::Put(const SpillKey& key, const EntryMeta& meta,
                         std::span<const std::byte> value) {
  if (meta.size != value.size()) {
    return Status::InvalidArgument("spill put: meta.size " + std::to_string(meta.size) +
                                   " != value size " + std::to_string(value.size()));
  }
  if (options_.verify_checksum_on_put && XXH3_64bits(value.data(), value.size()) != meta.checksum) {
    return Status::InvalidArgument("spill put: value does not match meta.checksum");
  }
  const uint64_t stored = RoundUp(value.size());
  auto old = ReadRecord(key);
  {
    std::lock_guard lock(mu_);
    const uint64_t freed = old.ok() ? old->location.stored_bytes : 0;
    if (stored_bytes_ - freed + stored > options_.capacity_bytes) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      return Status::ResourceExhausted("spill full: " + std::to_string(stored_bytes_) + " of " +
                                       std::to_string(options_.capacity_bytes) + " bytes used, " +
                                       std::to_string(stored) + " more needed");
    }
    stored_bytes_ += stored;  // reserved while the value is written
  }

  auto loc = log_->Append(value, options_.sync_writes);
  if (!loc.ok()) {
    std::lock_guard lock(mu_);
    stored_bytes_ -= stored;
    return loc.status().WithContext("spill put");
  }
  write_bytes_.fetch_add(value.size(), std::memory_order_relaxed);

  {
    std::lock_guard lock(mu_);
    old = ReadRecord(key);  // again: a compaction may have moved it meanwhile
    Status s = WriteRecord(key, {*loc, meta});
    if (!s.ok()) {
      stored_bytes_ -= stored;
      log_->Release(*loc);
      return s;
    }
    if (old.ok()) {
      stored_bytes_ -= old->location.stored_bytes;
      bytes_ -= old->meta.size;
      log_->Release(old->location);
    } else {
      ++entries_;
    }
    bytes_ += meta.size;
  }
  puts_.fetch_add(1, std::memory_order_relaxed);
  MaybeCompact();
  return Status::Ok();
}

Result<EntryMeta> RocksDbSpill::GetMeta(const SpillKey& key) {
  KVSTORE_ASSIGN_OR_RETURN(SpillRecord rec, ReadRecord(key));
  return rec.meta;
}

Status RocksDbSpill::Get(const SpillKey& key, std::span<std::byte> dst, EntryMeta* meta) {
  gets_.fetch_add(1, std::memory_order_relaxed);
  KVSTORE_ASSIGN_OR_RETURN(SpillRecord rec, ReadRecord(key));
  if (dst.size() < rec.meta.size) {
    return Status::InvalidArgument("spill get: buffer of " + std::to_string(dst.size()) +
                                   " bytes for a value of " + std::to_string(rec.meta.size));
  }
  auto out = dst.first(rec.meta.size);
  Status s;
  for (int attempt = 0;; ++attempt) {
    s = log_->Read(rec.location, out);
    if (s.ok() && XXH3_64bits(out.data(), out.size()) != rec.meta.checksum) {
      s = Status::DataLoss("spill get: checksum mismatch for key " + ShortHex(key) +
                           "; the entry was removed");
    }
    if (s.code() != StatusCode::kDataLoss || attempt == 2) break;
    // A compaction may have moved the value meanwhile, and its old place been
    // deleted or refilled: only bytes at the place the record names now count.
    auto now = ReadRecord(key);
    if (!now.ok() || (now->location.segment == rec.location.segment &&
                      now->location.offset == rec.location.offset)) {
      break;
    }
    rec = std::move(*now);
    if (dst.size() < rec.meta.size) break;
    out = dst.first(rec.meta.size);
  }
  if (s.code() == StatusCode::kDataLoss) {
    checksum_failures_.fetch_add(1, std::memory_order_relaxed);
    spdlog::error("{}", s.ToString());
    Status d = Delete(key);
    if (!d.ok() && d.code() != StatusCode::kNotFound) spdlog::error("{}", d.ToString());
    return s;
  }
  KVSTORE_RETURN_IF_ERROR(s.WithContext("spill get of key " + ShortHex(key)));
  read_bytes_.fetch_add(out.size(), std::memory_order_relaxed);
  if (meta != nullptr) *meta = rec.meta;
  return Status::Ok();
}

Status RocksDbSpill::Delete(const SpillKey& key) {
  std::lock_guard lock(mu_);
  KVSTORE_ASSIGN_OR_RETURN(SpillRecord rec, ReadRecord(key));
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync_writes;
  KVSTORE_RETURN_IF_ERROR(FromRocks(db_->Delete(wo, IndexKey(key)), "spill: index delete"));
  --entries_;
  bytes_ -= rec.meta.size;
  stored_bytes_ -= rec.location.stored_bytes;
  log_->Release(rec.location);
  deletes_.fetch_add(1, std::memory_order_relaxed);
  return Status::Ok();
}

Status RocksDbSpill::ForEach(const std::function<bool(const SpillKey&, const EntryMeta&)>& fn) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::optional<SpillKey> key = ParseIndexKey(it->key());
    if (!key) continue;
    auto rec = DecodeSpillRecord(it->value().ToStringView());
    if (!rec.ok()) {
      spdlog::warn("spill scan: skipping unreadable record: {}", rec.status().ToString());
      continue;
    }
    if (!fn(*key, rec->meta)) break;
  }
  return FromRocks(it->status(), "spill: scan index");
}

Status RocksDbSpill::Flush() {
  KVSTORE_RETURN_IF_ERROR(log_->Sync().WithContext("spill flush"));
  return FromRocks(db_->FlushWAL(/*sync=*/true), "spill flush: index WAL");
}

void RocksDbSpill::MaybeCompact() {
  if (log_->disk_bytes() <= log_->live_bytes() + max_garbage_) return;
  std::unique_lock lock(compact_mu_, std::try_to_lock);
  if (!lock.owns_lock()) return;  // another thread is on it
  while (log_->disk_bytes() > log_->live_bytes() + max_garbage_) {
    auto victim = log_->PickVictim(options_.compact_live_ratio);
    if (!victim) return;
    Status s = CompactSegment(*victim);
    if (!s.ok()) {
      spdlog::warn("spill compaction of segment {} stopped: {}", *victim, s.ToString());
      return;
    }
  }
}

Status RocksDbSpill::CompactSegment(uint64_t segment) {
  std::vector<std::pair<SpillKey, SpillRecord>> moving;
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      auto rec = DecodeSpillRecord(it->value().ToStringView());
      std::optional<SpillKey> key = ParseIndexKey(it->key());
      if (!rec.ok() || !key || rec->location.segment != segment) continue;
      moving.emplace_back(*key, std::move(*rec));
    }
    KVSTORE_RETURN_IF_ERROR(FromRocks(it->status(), "spill compaction: scan"));
  }
  for (auto& [key, rec] : moving) {
    AlignedBuffer buf = AllocAligned(rec.meta.size);
    std::span<std::byte> bytes(buf.get(), rec.meta.size);
    Status s = log_->Read(rec.location, bytes);
    if (s.ok() && XXH3_64bits(bytes.data(), bytes.size()) != rec.meta.checksum) {
      s = Status::DataLoss("spill compaction: checksum mismatch for key " + ShortHex(key));
    }
    if (!s.ok()) {
      // A bad value is dropped here rather than copied forward; Get would drop it too.
      checksum_failures_.fetch_add(1, std::memory_order_relaxed);
      spdlog::error("{}", s.ToString());
      Status d = Delete(key);
      (void)d;
      continue;
    }
    // At the head, not into holes: filling the victim's own holes would keep it alive.
    KVSTORE_ASSIGN_OR_RETURN(SpillLocation loc,
                             log_->Append(bytes, options_.sync_writes, /*fill_holes=*/false));
    std::lock_guard lock(mu_);
    auto now = ReadRecord(key);
    if (!now.ok() || now->location.segment != rec.location.segment ||
        now->location.offset != rec.location.offset) {
      log_->Release(loc);  // deleted or replaced meanwhile
      continue;
    }
    rec.location.segment = loc.segment;
    rec.location.offset = loc.offset;
    Status w = WriteRecord(key, {loc, rec.meta});
    if (!w.ok()) {
      log_->Release(loc);
      return w;
    }
    log_->Release(now->location);
    compacted_bytes_.fetch_add(rec.meta.size, std::memory_order_relaxed);
    write_bytes_.fetch_add(rec.meta.size, std::memory_order_relaxed);
  }
  return Status::Ok();
}

SpillStats RocksDbSpill::Stats() const {
  SpillStats st;
  {
    std::lock_guard lock(mu_);
    st.entries = entries_;
    st.bytes = bytes_;
  }
  st.capacity_bytes = options_.capacity_bytes;
  st.disk_bytes = log_->disk_bytes();
  st.write_bytes = write_bytes_.load(std::memory_order_relaxed);
  st.read_bytes = read_bytes_.load(std::memory_order_relaxed);
  st.puts = puts_.load(std::memory_order_relaxed);
  st.gets = gets_.load(std::memory_order_relaxed);
  st.deletes = deletes_.load(std::memory_order_relaxed);
  st.refused_puts = refused_.load(std::memory_order_relaxed);
  st.checksum_failures = checksum_failures_.load(std::memory_order_relaxed);
  st.compacted_bytes = compacted_bytes_.load(std::memory_order_relaxed);
  return st;
}

}  // namespace kvstore::tiers
