#include "value_log.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include <spdlog/spdlog.h>

namespace kvstore::tiers {
namespace {

constexpr uint64_t kAlign = 4096;
constexpr uint64_t kBounceBytes = 4ull << 20;

uint64_t RoundUp(uint64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }
bool Aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % kAlign == 0; }

std::string Errno(const char* what, const std::string& path) {
  return std::string(what) + " " + path + ": " + std::strerror(errno);
}

// Direct I/O needs aligned memory; callers' buffers usually are (arena slots
// are 4 KiB-aligned), and this one per thread covers the rest.
std::byte* Bounce() {
  struct Deleter {
    void operator()(std::byte* p) const { std::free(p); }
  };
  thread_local std::unique_ptr<std::byte, Deleter> buf(
      static_cast<std::byte*>(std::aligned_alloc(kAlign, kBounceBytes)));
  return buf.get();
}

class PosixIo final : public SegmentIo {
 public:
  int64_t Pwrite(uint64_t, int fd, const std::byte* p, uint64_t n, uint64_t off) override {
    const ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
    return w < 0 ? -errno : w;
  }
  int64_t Pread(uint64_t, int fd, std::byte* p, uint64_t n, uint64_t off) override {
    const ssize_t r = ::pread(fd, p, n, static_cast<off_t>(off));
    return r < 0 ? -errno : r;
  }
  int Fdatasync(uint64_t, int fd) override { return ::fdatasync(fd) == 0 ? 0 : -errno; }
  int Fallocate(uint64_t, int fd, uint64_t off, uint64_t n) override {
    return ::fallocate(fd, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off), static_cast<off_t>(n)) == 0
               ? 0
               : -errno;
  }
  Space FreeSpace(const std::string& dir) override {
    struct statvfs st {};
    if (::statvfs(dir.c_str(), &st) != 0) return {-errno, 0};
    return {static_cast<int64_t>(st.f_bavail * st.f_frsize), st.f_blocks * st.f_frsize};
  }
};

// 0, or the errno of the failed write (EIO for a write that moved nothing).
int PwriteAll(SegmentIo& io, uint64_t seg, int fd, const std::byte* p, uint64_t n, uint64_t off) {
  while (n > 0) {
    const int64_t w = io.Pwrite(seg, fd, p, n, off);
    if (w == -EINTR) continue;
    if (w < 0) return static_cast<int>(-w);
    if (w == 0) return EIO;
    p += w;
    n -= static_cast<uint64_t>(w);
    off += static_cast<uint64_t>(w);
  }
  return 0;
}

// Bytes read (short only at end of file), or -errno.
int64_t PreadAll(SegmentIo& io, uint64_t seg, int fd, std::byte* p, uint64_t n, uint64_t off) {
  uint64_t done = 0;
  while (done < n) {
    const int64_t r = io.Pread(seg, fd, p + done, n - done, off + done);
    if (r == -EINTR) continue;
    if (r < 0) return r;
    if (r == 0) break;
    done += static_cast<uint64_t>(r);
  }
  return static_cast<int64_t>(done);
}

std::string Where(uint64_t bytes, uint64_t segment, uint64_t offset, const std::string& path) {
  return std::to_string(bytes) + " bytes at segment " + std::to_string(segment) + " offset " +
         std::to_string(offset) + " (" + path + ")";
}

// A failed segment write: a full disk is "retry later" (ResourceExhausted), any
// other error a failing disk (Internal). Either way nothing was stored.
Status WriteError(const char* what, int err, const std::string& where) {
  std::string msg =
      std::string("value log: ") + what + " of " + where + " failed: " + std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) {
    return Status::ResourceExhausted(msg +
                                     "; the spill disk is full: nothing was stored; free space "
                                     "on it or lower --spill");
  }
  return Status::Internal(msg + "; nothing was stored; check the disk (dmesg, SMART)");
}

}  // namespace

std::shared_ptr<SegmentIo> PosixSegmentIo() {
  static const auto io = std::make_shared<PosixIo>();
  return io;
}

struct ValueLog::Segment {
  uint64_t id = 0;
  std::string path;
  int fd = -1;
  uint64_t size = 0;  // bytes reserved (the write head)
  uint64_t live = 0;
  // Dead extents (offset -> length), coalesced; Append fills them before
  // growing the log. GUARDED_BY(ValueLog::mu_), as are size and live.
  std::map<uint64_t, uint64_t> holes;
  // Live extents adopted at Open, turned into `holes` by DropUnreferenced.
  std::vector<std::pair<uint64_t, uint64_t>> adopted;
  bool dirty = false;   // GUARDED_BY(ValueLog::mu_)
  bool direct = false;  // opened with O_DIRECT
  ~Segment() {
    if (fd >= 0) close(fd);
  }
};

ValueLog::ValueLog(const ValueLogOptions& options)
    : options_(options),
      io_(options.io ? options.io : PosixSegmentIo()),
      direct_io_(options.direct_io) {}

ValueLog::~ValueLog() = default;

Result<std::unique_ptr<ValueLog>> ValueLog::Open(const ValueLogOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec) return Status::Internal("value log: create " + options.dir + ": " + ec.message());
  std::unique_ptr<ValueLog> log(new ValueLog(options));
  for (const auto& e : std::filesystem::directory_iterator(options.dir, ec)) {
    const std::string name = e.path().filename().string();
    uint64_t id = 0;
    char tail[8] = {};
    if (std::sscanf(name.c_str(), "seg-%" SCNu64 ".%7s", &id, tail) != 2 ||
        std::strcmp(tail, "vlog") != 0) {
      continue;
    }
    auto seg = std::make_shared<Segment>();
    seg->id = id;
    seg->path = e.path().string();
    seg->direct = log->direct_io_;
    // Read-write: later values fill its holes.
    seg->fd = open(seg->path.c_str(), O_RDWR | O_CLOEXEC | (seg->direct ? O_DIRECT : 0));
    if (seg->fd < 0 && errno == EINVAL && seg->direct) {
      seg->direct = false;
      seg->fd = open(seg->path.c_str(), O_RDWR | O_CLOEXEC);
    }
    if (seg->fd < 0) return Status::Internal(Errno("value log: open", seg->path));
    struct stat st {};
    if (fstat(seg->fd, &st) != 0) return Status::Internal(Errno("value log: stat", seg->path));
    seg->size = static_cast<uint64_t>(st.st_size);
    log->disk_bytes_ += seg->size;
    log->next_id_ = std::max(log->next_id_, id + 1);
    log->segments_.emplace(id, std::move(seg));
  }
  if (ec) return Status::Internal("value log: list " + options.dir + ": " + ec.message());
  return log;
}

bool ValueLog::Adopt(const SpillLocation& loc) {
  std::lock_guard lock(mu_);
  if (loc.stored_bytes == 0) return true;
  auto it = segments_.find(loc.segment);
  // Checked without overflow: the location comes from an index read back from disk.
  if (it == segments_.end() || loc.offset > it->second->size ||
      loc.stored_bytes > it->second->size - loc.offset) {
    return false;
  }
  it->second->live += loc.stored_bytes;
  it->second->adopted.emplace_back(loc.offset, loc.stored_bytes);
  live_bytes_ += loc.stored_bytes;
  return true;
}

void ValueLog::DropUnreferenced() {
  std::lock_guard lock(mu_);
  for (auto it = segments_.begin(); it != segments_.end();) {
    if (it->second->live == 0 && it->second != active_) {
      auto dead = it++;
      EraseSegmentLocked(dead);
      continue;
    }
    // What lies between the live values is dead: reusable like any freed extent.
    Segment& seg = *it->second;
    std::sort(seg.adopted.begin(), seg.adopted.end());
    uint64_t at = 0;
    for (const auto& [off, len] : seg.adopted) {
      if (off > at) AddHoleLocked(seg, at, off - at);
      at = std::max(at, off + len);
    }
    if (seg.size > at) AddHoleLocked(seg, at, seg.size - at);
    seg.adopted = {};
    ++it;
  }
}

uint64_t ValueLog::ReserveFor(uint64_t filesystem_bytes) const {
  if (options_.reserve_bytes != kAutoReserve) return options_.reserve_bytes;
  return std::min<uint64_t>(64ull << 20, filesystem_bytes / 8);
}

Status ValueLog::CheckHeadroom(uint64_t stored) {
  const SegmentIo::Space space = io_->FreeSpace(options_.dir);
  if (space.available < 0) return Status::Ok();  // unknown: the write itself will tell
  const uint64_t reserve = ReserveFor(space.total);
  const auto available = static_cast<uint64_t>(space.available);
  if (available >= reserve && available - reserve >= stored) return Status::Ok();
  return Status::ResourceExhausted(
      "value log: the disk of " + options_.dir + " is nearly full (" +
      std::to_string(available >> 10) + " KiB free, " + std::to_string(reserve >> 10) +
      " KiB kept for the spill index so it can always be written and reopened); " +
      std::to_string(stored) + " bytes were not stored; free space on that disk or lower --spill");
}

void ValueLog::AddHoleLocked(Segment& seg, uint64_t offset, uint64_t len) {
  auto next = seg.holes.lower_bound(offset);
  if (next != seg.holes.end() && next->first == offset + len) {  // merge with the one after
    len += next->second;
    next = seg.holes.erase(next);
  }
  if (next != seg.holes.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == offset) {  // and with the one before
      prev->second += len;
      hole_bytes_ += len;
      return;
    }
  }
  seg.holes.emplace(offset, len);
  hole_bytes_ += len;
}

std::optional<SpillLocation> ValueLog::TakeHoleLocked(uint64_t stored) {
  if (hole_bytes_ < stored) return std::nullopt;
  for (auto& [id, seg] : segments_) {
    for (auto h = seg->holes.begin(); h != seg->holes.end(); ++h) {
      if (h->second < stored) continue;
      SpillLocation loc{id, h->first, stored};
      const uint64_t rest = h->second - stored;
      seg->holes.erase(h);
      if (rest > 0) seg->holes.emplace(loc.offset + stored, rest);
      hole_bytes_ -= stored;
      seg->live += stored;
      live_bytes_ += stored;
      return loc;
    }
  }
  return std::nullopt;
}

void ValueLog::EraseSegmentLocked(std::map<uint64_t, std::shared_ptr<Segment>>::iterator it) {
  unlink(it->second->path.c_str());  // readers still holding the segment keep its fd
  disk_bytes_ -= it->second->size;
  for (const auto& [off, len] : it->second->holes) hole_bytes_ -= len;
  if (it->second == active_) active_.reset();
  segments_.erase(it);
}

Result<std::shared_ptr<ValueLog::Segment>> ValueLog::NewSegmentLocked() {
  auto seg = std::make_shared<Segment>();
  seg->id = next_id_++;
  char name[40];
  std::snprintf(name, sizeof(name), "seg-%016" PRIu64 ".vlog", seg->id);
  seg->path = options_.dir + "/" + name;
  const int flags = O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC;
  seg->direct = direct_io_;
  seg->fd = open(seg->path.c_str(), flags | (seg->direct ? O_DIRECT : 0), 0644);
  if (seg->fd < 0 && errno == EINVAL && seg->direct) {
    spdlog::warn("value log: {} refuses O_DIRECT; using buffered I/O", options_.dir);
    direct_io_ = false;
    seg->direct = false;
    seg->fd = open(seg->path.c_str(), flags, 0644);
  }
  if (seg->fd < 0) return Status::Internal(Errno("value log: create", seg->path));
  // The new name must survive power loss too, or Flush() would sync an orphan.
  const int dfd = open(options_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  segments_.emplace(seg->id, seg);
  return seg;
}

Result<SpillLocation> ValueLog::Append(std::span<const std::byte> value, bool sync,
                                       bool fill_holes) {
  const uint64_t size = value.size();
  const uint64_t stored = RoundUp(size);
  std::shared_ptr<Segment> seg;
  SpillLocation loc;
  {
    std::lock_guard lock(mu_);
    std::optional<SpillLocation> hole;
    if (fill_holes) hole = TakeHoleLocked(stored);
    if (hole) {
      loc = *hole;
      seg = segments_.at(loc.segment);
    }
    if (!hole) KVSTORE_RETURN_IF_ERROR(CheckHeadroom(stored));
    if (!hole &&
        (!active_ || (active_->size > 0 && active_->size + stored > options_.segment_bytes))) {
      if (active_ && active_->live == 0) EraseSegmentLocked(segments_.find(active_->id));
      active_.reset();
      KVSTORE_ASSIGN_OR_RETURN(active_, NewSegmentLocked());
    }
    if (!hole) {
      seg = active_;
      loc = {seg->id, seg->size, stored};
      seg->size += stored;
      seg->live += stored;
      live_bytes_ += stored;
      disk_bytes_ += stored;
    }
  }

  SegmentIo& io = *io_;
  const uint64_t id = seg->id;
  // A full disk shows here, before any byte is written (where the filesystem can tell).
  int err = io.Fallocate(id, seg->fd, loc.offset, stored);
  if (err == -EOPNOTSUPP || err == -ENOSYS) err = 0;
  err = -err;
  const uint64_t whole = size / kAlign * kAlign;
  if (err == 0 && (Aligned(value.data()) || !seg->direct)) {
    err = PwriteAll(io, id, seg->fd, value.data(), whole, loc.offset);
  } else {
    for (uint64_t done = 0; err == 0 && done < whole; done += kBounceBytes) {
      const uint64_t n = std::min(kBounceBytes, whole - done);
      std::memcpy(Bounce(), value.data() + done, n);
      err = PwriteAll(io, id, seg->fd, Bounce(), n, loc.offset + done);
    }
  }
  if (err == 0 && stored > whole) {
    std::byte* tail = Bounce();
    std::memcpy(tail, value.data() + whole, size - whole);
    std::memset(tail + (size - whole), 0, stored - size);
    err = PwriteAll(io, id, seg->fd, tail, kAlign, loc.offset + whole);
  }
  const char* what = "write";
  if (err == 0 && sync) {
    what = "fdatasync";
    err = -io.Fdatasync(id, seg->fd);
  }
  if (err != 0) {
    Status s = WriteError(what, err, Where(size, id, loc.offset, seg->path));
    Release(loc);
    return s;
  }
  if (!sync) {
    // Marked only now that the bytes are written: a Sync that began meanwhile
    // must not clear the mark before they are there to be synced.
    std::lock_guard lock(mu_);
    seg->dirty = true;
  }
  return loc;
}

Status ValueLog::Read(const SpillLocation& loc, std::span<std::byte> dst) {
  if (dst.empty()) return Status::Ok();
  std::shared_ptr<Segment> seg = Find(loc.segment);
  if (!seg)
    return Status::DataLoss("value log: segment " + std::to_string(loc.segment) + " is gone");
  const uint64_t size = dst.size();
  const uint64_t whole = size / kAlign * kAlign;
  const uint64_t stored = RoundUp(size);
  SegmentIo& io = *io_;
  // got: bytes read of what was asked (short only at end of file), or -errno.
  auto read = [&](std::byte* p, uint64_t n, uint64_t off) {
    return PreadAll(io, seg->id, seg->fd, p, n, off);
  };
  int64_t got = 0;
  uint64_t want = 0;
  if (Aligned(dst.data()) || !seg->direct) {
    want = whole;
    got = read(dst.data(), whole, loc.offset);
  } else {
    for (uint64_t done = 0; got == static_cast<int64_t>(want) && done < whole;
         done += kBounceBytes) {
      want = std::min(kBounceBytes, whole - done);
      got = read(Bounce(), want, loc.offset + done);
      if (got == static_cast<int64_t>(want)) std::memcpy(dst.data() + done, Bounce(), want);
    }
  }
  if (got == static_cast<int64_t>(want) && stored > whole) {
    want = size - whole;
    got = read(Bounce(), kAlign, loc.offset + whole);
    if (got >= static_cast<int64_t>(want)) {
      std::memcpy(dst.data() + whole, Bounce(), want);
      got = static_cast<int64_t>(want);
    }
  }
  if (got < 0) {
    // The disk failed the read; the bytes may well be fine: keep the entry.
    return Status::Internal("value log: read of " + Where(size, seg->id, loc.offset, seg->path) +
                            " failed: " + std::strerror(static_cast<int>(-got)) +
                            "; the entry stays on disk and was not served; check the disk "
                            "(dmesg, SMART) and read it again");
  }
  if (got != static_cast<int64_t>(want)) {
    return Status::DataLoss("value log: short read of " +
                            Where(size, seg->id, loc.offset, seg->path) +
                            ": the segment ends before the value");
  }
  return Status::Ok();
}

void ValueLog::Release(const SpillLocation& loc) {
  if (loc.stored_bytes == 0) return;
  std::lock_guard lock(mu_);
  auto it = segments_.find(loc.segment);
  if (it == segments_.end()) return;
  Segment& seg = *it->second;
  seg.live -= std::min(seg.live, loc.stored_bytes);
  live_bytes_ -= std::min(live_bytes_, loc.stored_bytes);
  // The head segment too: with nothing live in it no append is in flight there
  // (an append counts as live from its reservation), and the next one starts a
  // new segment, so removing everything brings the disk back to empty.
  if (seg.live == 0) {
    EraseSegmentLocked(it);
  } else {
    AddHoleLocked(seg, loc.offset, loc.stored_bytes);
  }
}

Status ValueLog::Sync() {
  std::vector<std::shared_ptr<Segment>> dirty;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, seg] : segments_) {
      if (seg->dirty) {
        seg->dirty = false;
        dirty.push_back(seg);
      }
    }
  }
  for (auto& seg : dirty) {
    if (int err = -io_->Fdatasync(seg->id, seg->fd); err != 0) {
      std::lock_guard lock(mu_);
      seg->dirty = true;
      return WriteError("fdatasync", err,
                        "segment " + std::to_string(seg->id) + " (" + seg->path + ")");
    }
  }
  return Status::Ok();
}

std::shared_ptr<ValueLog::Segment> ValueLog::Find(uint64_t id) const {
  std::lock_guard lock(mu_);
  auto it = segments_.find(id);
  return it == segments_.end() ? nullptr : it->second;
}

std::optional<uint64_t> ValueLog::SegmentSize(uint64_t segment) const {
  auto seg = Find(segment);
  if (!seg) return std::nullopt;
  std::lock_guard lock(mu_);
  return seg->size;
}

std::optional<uint64_t> ValueLog::PickVictim(double max_live_ratio) const {
  std::lock_guard lock(mu_);
  std::optional<uint64_t> best;
  double best_ratio = max_live_ratio;
  for (const auto& [id, seg] : segments_) {
    if (seg == active_ || seg->size == 0) continue;
    const double ratio = static_cast<double>(seg->live) / static_cast<double>(seg->size);
    if (ratio < best_ratio) {
      best_ratio = ratio;
      best = id;
    }
  }
  return best;
}

uint64_t ValueLog::disk_bytes() const {
  std::lock_guard lock(mu_);
  return disk_bytes_;
}

uint64_t ValueLog::live_bytes() const {
  std::lock_guard lock(mu_);
  return live_bytes_;
}

}  // namespace kvstore::tiers
