// Fuzzes DecodeSpillRecord: the spill index's values as read back from RocksDB
// after a crash or from a damaged disk. A record it accepts re-encodes to the
// bytes it read (minus trailing bytes a later version may append).
#include "fuzz_util.h"
#include "spill_record.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvstore;
  using namespace kvstore::tiers;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto r = DecodeSpillRecord(in);
  if (!r.ok()) {
    FUZZ_CHECK(r.status().code() == StatusCode::kDataLoss);
    return 0;
  }
  FUZZ_CHECK(r->location.stored_bytes >= r->meta.size);
  FUZZ_CHECK(r->meta.tier == Tier::kSpill);
  std::string again = EncodeSpillRecord(*r);
  FUZZ_CHECK(again.size() <= size && in.substr(0, again.size()) == again);
  auto twice = DecodeSpillRecord(again);
  FUZZ_CHECK(twice.ok() && EncodeSpillRecord(*twice) == again);
  return 0;
}
