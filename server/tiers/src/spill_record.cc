#include "spill_record.h"

namespace kvstore::tiers {
namespace {

void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool U8(uint8_t* v) {
    if (in_.size() < 1) return false;
    *v = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return true;
  }
  bool U64(uint64_t* v) { return Uint(v, 8); }
  bool Str(std::string* s) {
    uint64_t len;
    if (!Uint(&len, 4) || in_.size() < len) return false;
    s->assign(in_.substr(0, len));
    in_.remove_prefix(len);
    return true;
  }

 private:
  bool Uint(uint64_t* v, int n) {
    if (in_.size() < static_cast<size_t>(n)) return false;
    uint64_t r = 0;
    for (int i = 0; i < n; ++i) r |= uint64_t{static_cast<uint8_t>(in_[i])} << (8 * i);
    in_.remove_prefix(n);
    *v = r;
    return true;
  }
  std::string_view in_;
};

}  // namespace

std::string EncodeSpillRecord(const SpillRecord& r) {
  std::string out;
  out.reserve(1 + 8 * 7 + 8 + r.meta.layout.size() + r.meta.producer.size());
  out.push_back(static_cast<char>(kSpillRecordVersion));
  PutU64(&out, r.location.segment);
  PutU64(&out, r.location.offset);
  PutU64(&out, r.location.stored_bytes);
  PutU64(&out, r.meta.size);
  PutU64(&out, r.meta.checksum);
  PutU64(&out, r.meta.created_unix_ms);
  PutU64(&out, r.meta.expires_unix_ms);
  PutU32(&out, static_cast<uint32_t>(r.meta.layout.size()));
  out.append(r.meta.layout);
  PutU32(&out, static_cast<uint32_t>(r.meta.producer.size()));
  out.append(r.meta.producer);
  return out;
}

Result<SpillRecord> DecodeSpillRecord(std::string_view bytes) {
  Reader in(bytes);
  uint8_t version = 0;
  if (!in.U8(&version)) return Status::DataLoss("spill record: empty");
  if (version != kSpillRecordVersion) {
    return Status::DataLoss("spill record: unknown version " + std::to_string(version));
  }
  SpillRecord r;
  if (!in.U64(&r.location.segment) || !in.U64(&r.location.offset) ||
      !in.U64(&r.location.stored_bytes) || !in.U64(&r.meta.size) || !in.U64(&r.meta.checksum) ||
      !in.U64(&r.meta.created_unix_ms) || !in.U64(&r.meta.expires_unix_ms) ||
      !in.Str(&r.meta.layout) || !in.Str(&r.meta.producer)) {
    return Status::DataLoss("spill record: truncated (" + std::to_string(bytes.size()) + " bytes)");
  }
  if (r.location.stored_bytes < r.meta.size) {
    return Status::DataLoss("spill record: stored bytes smaller than the value");
  }
  r.meta.tier = Tier::kSpill;
  return r;
}

}  // namespace kvstore::tiers
