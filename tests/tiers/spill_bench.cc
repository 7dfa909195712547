// kvstore-spill-bench: spill tier write/read throughput next to raw sequential
// direct-I/O disk throughput measured in the same run and the same directory.
//
//   kvstore-spill-bench [--dir DIR] [--total SIZE] [--reps N] [--json]
//
// For each value size (1 MiB, 16 MiB) and repetition, interleaved: raw O_DIRECT
// write (+ fdatasync), spill Put of the same bytes (+ Flush), raw O_DIRECT read,
// spill Get (checksum verified). Also spill with sync_writes (fdatasync per Put).
// Prints numbers; asserts nothing.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <xxhash.h>
#include <CLI/CLI.hpp>

#include "kvstore/tiers/rocksdb_spill.h"

namespace {

using kvstore::EntryMeta;
using kvstore::Key;
using kvstore::tiers::RocksDbSpill;
using kvstore::tiers::SpillOptions;
using kvstore::tiers::SpillStats;
using Clock = std::chrono::steady_clock;

constexpr uint64_t MiB = 1ull << 20;

bool ParseSize(const std::string& text, uint64_t* out) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || v < 0) return false;
  std::string unit(end);
  uint64_t mul = 1;
  if (unit.empty() || unit == "B") {
    mul = 1;
  } else if (unit == "K" || unit == "KiB" || unit == "k") {
    mul = 1ull << 10;
  } else if (unit == "M" || unit == "MiB" || unit == "m") {
    mul = 1ull << 20;
  } else if (unit == "G" || unit == "GiB" || unit == "g") {
    mul = 1ull << 30;
  } else {
    return false;
  }
  *out = static_cast<uint64_t>(v * static_cast<double>(mul));
  return true;
}

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct Buffer {
  std::byte* p;
  uint64_t n;
  explicit Buffer(uint64_t bytes)
      : p(static_cast<std::byte*>(std::aligned_alloc(4096, bytes))), n(bytes) {}
  ~Buffer() { std::free(p); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

// GB/s of writing `total` bytes in `block` pieces with O_DIRECT, fdatasync at the end.
double RawWrite(const std::string& path, const Buffer& buf, uint64_t block, uint64_t total) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT, 0644);
  if (fd < 0) return -1;
  const auto t0 = Clock::now();
  for (uint64_t off = 0; off < total; off += block) {
    if (pwrite(fd, buf.p, block, static_cast<off_t>(off)) != static_cast<ssize_t>(block)) {
      close(fd);
      return -1;
    }
  }
  fdatasync(fd);
  const auto t1 = Clock::now();
  close(fd);
  return static_cast<double>(total) / Seconds(t0, t1) / 1e9;
}

double RawRead(const std::string& path, Buffer& buf, uint64_t block, uint64_t total) {
  const int fd = open(path.c_str(), O_RDONLY | O_DIRECT);
  if (fd < 0) return -1;
  const auto t0 = Clock::now();
  for (uint64_t off = 0; off < total; off += block) {
    if (pread(fd, buf.p, block, static_cast<off_t>(off)) != static_cast<ssize_t>(block)) {
      close(fd);
      return -1;
    }
  }
  const auto t1 = Clock::now();
  close(fd);
  return static_cast<double>(total) / Seconds(t0, t1) / 1e9;
}

Key KeyOf(uint64_t i) {
  Key k;
  std::memcpy(k.bytes.data(), &i, sizeof(i));
  k.bytes[31] = std::byte{0x5a};
  return k;
}

struct SpillResult {
  double write = -1, read = -1;
};

SpillResult SpillRun(const std::string& dir, const Buffer& value, Buffer& out, uint64_t total,
                     bool sync_writes) {
  SpillResult r;
  SpillOptions opts;
  opts.dir = dir;
  opts.capacity_bytes = 2 * total + 64 * MiB;
  opts.sync_writes = sync_writes;
  auto spill = RocksDbSpill::Open(opts);
  if (!spill.ok()) {
    std::fprintf(stderr, "open: %s\n", spill.status().ToString().c_str());
    return r;
  }
  EntryMeta meta;
  meta.size = value.n;
  meta.checksum = XXH3_64bits(value.p, value.n);
  meta.layout = "bench";
  const uint64_t count = total / value.n;
  const std::span<const std::byte> v(value.p, value.n);
  auto t0 = Clock::now();
  for (uint64_t i = 0; i < count; ++i) {
    kvstore::Status s = (*spill)->Put(KeyOf(i), meta, v);
    if (!s.ok()) {
      std::fprintf(stderr, "put: %s\n", s.ToString().c_str());
      return r;
    }
  }
  if (!(*spill)->Flush().ok()) return r;
  auto t1 = Clock::now();
  r.write = static_cast<double>(count * value.n) / Seconds(t0, t1) / 1e9;

  t0 = Clock::now();
  for (uint64_t i = 0; i < count; ++i) {
    kvstore::Status s = (*spill)->Get(KeyOf(i), std::span(out.p, out.n), nullptr);
    if (!s.ok()) {
      std::fprintf(stderr, "get: %s\n", s.ToString().c_str());
      return r;
    }
  }
  t1 = Clock::now();
  r.read = static_cast<double>(count * value.n) / Seconds(t0, t1) / 1e9;
  return r;
}

// Values of 64 KiB..1 MiB fill a spill tier to ~90% of its capacity, then as
// many bytes again replace random entries with values of other sizes: the
// space they free is refilled (holes) or compacted. Reports both phases' put
// rate, the disk used over the live bytes at the end, and the compaction's
// write amplification (bytes moved by compaction per byte put).
struct ChurnResult {
  double fill = -1, churn = -1, disk_over_live = -1, compacted_per_put = -1;
};

ChurnResult ChurnRun(const std::string& dir, uint64_t total, uint64_t seed) {
  ChurnResult r;
  SpillOptions opts;
  opts.dir = dir;
  opts.capacity_bytes = total + total / 9;
  auto spill = RocksDbSpill::Open(opts);
  if (!spill.ok()) return r;
  std::mt19937_64 rng(seed);
  Buffer value(1 * MiB);
  for (uint64_t i = 0; i < value.n / 8; ++i) {
    const uint64_t x = rng();
    std::memcpy(value.p + 8 * i, &x, 8);
  }
  auto put = [&](uint64_t key) {
    const uint64_t n = (64 + rng() % 961) * 1024;
    EntryMeta meta;
    meta.size = n;
    meta.checksum = XXH3_64bits(value.p, n);
    return (*spill)->Put(KeyOf(key), meta, std::span<const std::byte>(value.p, n)).ok() ? n : 0;
  };
  uint64_t keys = 0, bytes = 0;
  auto t0 = Clock::now();
  while (bytes < total) {
    const uint64_t n = put(keys++);
    if (n == 0) return r;
    bytes += n;
  }
  auto t1 = Clock::now();
  r.fill = static_cast<double>(bytes) / Seconds(t0, t1) / 1e9;
  const uint64_t compacted_before = (*spill)->Stats().compacted_bytes;
  uint64_t churned = 0;
  t0 = Clock::now();
  while (churned < total) {
    const uint64_t n = put(rng() % keys);
    if (n == 0) continue;  // a larger value did not fit under the capacity: try another
    churned += n;
  }
  t1 = Clock::now();
  r.churn = static_cast<double>(churned) / Seconds(t0, t1) / 1e9;
  const SpillStats st = (*spill)->Stats();
  r.disk_over_live = static_cast<double>(st.disk_bytes) / static_cast<double>(st.bytes);
  r.compacted_per_put =
      static_cast<double>(st.compacted_bytes - compacted_before) / static_cast<double>(churned);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"spill tier throughput next to raw direct-I/O disk throughput"};
  std::string dir = "/tmp";
  std::string total_text = "512MiB";
  int reps = 2;
  bool json = false;
  app.add_option("--dir", dir, "directory on the disk to measure (a temp dir is made inside)");
  app.add_option("--total", total_text, "bytes written per measurement, e.g. 512MiB");
  app.add_option("--reps", reps, "repetitions, interleaved");
  app.add_flag("--json", json, "one JSON object per line instead of a table");
  CLI11_PARSE(app, argc, argv);
  uint64_t total = 0;
  if (!ParseSize(total_text, &total) || total < 16 * MiB) {
    std::fprintf(stderr, "--total: want a size of at least 16MiB, got '%s'\n", total_text.c_str());
    return 2;
  }

  std::string root = dir + "/kvstore-spill-bench-XXXXXX";
  if (mkdtemp(root.data()) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  if (!json) {
    std::printf("dir %s, %llu MiB per measurement, %d reps; GB/s (1e9 B/s)\n", root.c_str(),
                static_cast<unsigned long long>(total / MiB), reps);
    std::printf("%-6s %-4s %-10s %9s %9s %9s %9s %8s %8s\n", "value", "rep", "mode", "raw_wr",
                "spill_wr", "raw_rd", "spill_rd", "wr_ratio", "rd_ratio");
  }
  std::mt19937_64 rng(1);
  for (uint64_t block : {1 * MiB, 16 * MiB}) {
    Buffer value(block), out(block);
    for (uint64_t i = 0; i < block / 8; ++i) {
      const uint64_t x = rng();
      std::memcpy(value.p + 8 * i, &x, 8);
    }
    const uint64_t n = total / block * block;
    for (int rep = 0; rep < reps; ++rep) {
      for (bool sync : {false, true}) {
        if (sync && block != 1 * MiB) continue;  // per-Put fdatasync matters for small values
        const std::string raw = root + "/raw.dat";
        const double rw = RawWrite(raw, value, block, n);
        const std::string sdir = root + "/spill";
        const SpillResult s = SpillRun(sdir, value, out, n, sync);
        const double rr = RawRead(raw, out, block, n);
        std::filesystem::remove_all(sdir);
        std::filesystem::remove(raw);
        const char* mode = sync ? "sync/put" : "default";
        if (json) {
          std::printf(
              "{\"value_bytes\":%llu,\"rep\":%d,\"mode\":\"%s\",\"raw_write_gbps\":%.3f,"
              "\"spill_write_gbps\":%.3f,\"raw_read_gbps\":%.3f,\"spill_read_gbps\":%.3f,"
              "\"write_ratio\":%.3f,\"read_ratio\":%.3f}\n",
              static_cast<unsigned long long>(block), rep, mode, rw, s.write, rr, s.read,
              s.write / rw, s.read / rr);
        } else {
          std::printf("%-6s %-4d %-10s %9.3f %9.3f %9.3f %9.3f %8.2f %8.2f\n",
                      block == MiB ? "1MiB" : "16MiB", rep, mode, rw, s.write, rr, s.read,
                      s.write / rw, s.read / rr);
        }
        std::fflush(stdout);
      }
    }
  }
  if (!json) {
    std::printf(
        "\nchurn: fill to 90%% of capacity, then replace as many bytes again with other "
        "sizes (64KiB..1MiB); GB/s\n%-4s %9s %9s %8s %10s %12s\n",
        "rep", "fill", "churn", "ratio", "disk/live", "compacted/put");
  }
  for (int rep = 0; rep < reps; ++rep) {
    const std::string sdir = root + "/churn";
    const ChurnResult c = ChurnRun(sdir, total, static_cast<uint64_t>(rep) + 1);
    std::filesystem::remove_all(sdir);
    if (json) {
      std::printf(
          "{\"churn_rep\":%d,\"fill_gbps\":%.3f,\"churn_gbps\":%.3f,\"disk_over_live\":%.3f,"
          "\"compacted_per_put\":%.3f}\n",
          rep, c.fill, c.churn, c.disk_over_live, c.compacted_per_put);
    } else {
      std::printf("%-4d %9.3f %9.3f %8.2f %10.3f %12.3f\n", rep, c.fill, c.churn, c.churn / c.fill,
                  c.disk_over_live, c.compacted_per_put);
    }
    std::fflush(stdout);
  }
  std::filesystem::remove_all(root);
  return 0;
}
