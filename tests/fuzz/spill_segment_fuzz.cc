// Fuzzes what reopening a spill directory does with the index's records: the
// record is decoded, its location adopted against a segment file on disk, and
// the value read back. Segments carry no header of their own (the index record
// is all that describes them), so a damaged record is the untrusted input here.
// Promise checked: a location Adopt accepts lies inside its segment, and a read
// of it never touches memory outside the destination.
//
// Input: u32 segment file size (mod 1 MiB) | spill record bytes.
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <vector>

#include "fuzz_util.h"
#include "spill_record.h"
#include "value_log.h"

namespace {

// One scratch directory per process, removed at exit. Never destroyed (the
// exit handler still reads it after static destructors would have run).
const std::string& Dir() {
  static const std::string* dir = [] {
    char tmpl[] = "/tmp/kvstore-fuzz-spill-XXXXXX";
    const char* d = mkdtemp(tmpl);
    FUZZ_CHECK(d != nullptr);
    auto* path = new std::string(d);
    std::atexit([] { std::filesystem::remove_all(Dir()); });
    return path;
  }();
  return *dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvstore;
  using namespace kvstore::tiers;
  if (size < 4) return 0;
  uint32_t seg_size;
  std::memcpy(&seg_size, data, 4);
  seg_size %= 1u << 20;
  auto rec = DecodeSpillRecord(std::string_view(reinterpret_cast<const char*>(data) + 4, size - 4));
  if (!rec.ok()) return 0;

  const std::string path = Dir() + "/seg-0000000000000001.vlog";
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  FUZZ_CHECK(fd >= 0);
  FUZZ_CHECK(ftruncate(fd, seg_size) == 0);
  close(fd);

  auto log = ValueLog::Open({.dir = Dir(), .segment_bytes = 1u << 20, .direct_io = false});
  FUZZ_CHECK(log.ok());
  const SpillLocation& loc = rec->location;
  if ((*log)->Adopt(loc)) {
    if (loc.stored_bytes > 0) {
      FUZZ_CHECK(loc.segment == 1);
      FUZZ_CHECK(loc.offset <= seg_size && loc.stored_bytes <= seg_size - loc.offset);
    }
    const uint64_t n = std::min<uint64_t>({rec->meta.size, loc.stored_bytes, 1u << 20});
    std::vector<std::byte> dst(n);
    Status s = (*log)->Read(loc, dst);
    FUZZ_CHECK(s.ok() || s.code() == StatusCode::kDataLoss);
    (*log)->Release(loc);
  }
  return 0;
}
