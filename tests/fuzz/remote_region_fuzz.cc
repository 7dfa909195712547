// Fuzzes RemoteRegion::Decode (a client's one-sided region descriptor, from the
// wire) and ResolveRemote with wire offsets. A decoded region re-encodes to the
// same bytes; a resolved range lies inside the region.
#include <cstring>

#include "fuzz_util.h"
#include "kvstore/rdma/remote_region.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvstore;
  using namespace kvstore::rdma;
  // Layout: descriptor bytes, then optionally u64 offset + u64 length.
  size_t desc_len = size >= kRemoteRegionEncodedSize + 16 ? kRemoteRegionEncodedSize : size;
  auto r = RemoteRegion::Decode(fuzz::Bytes(data, desc_len));
  if (!r.ok()) {
    FUZZ_CHECK(r.status().code() == StatusCode::kInvalidArgument);
    return 0;
  }
  FUZZ_CHECK(r->length > 0 && r->addr + r->length >= r->addr);
  auto again = r->Encode();
  FUZZ_CHECK(again.size() == desc_len && std::memcmp(again.data(), data, desc_len) == 0);
  if (size < desc_len + 16) return 0;
  uint64_t offset, length;
  std::memcpy(&offset, data + desc_len, 8);
  std::memcpy(&length, data + desc_len + 8, 8);
  auto a = ResolveRemote(*r, offset, length);
  if (!a.ok()) return 0;
  FUZZ_CHECK(length > 0 && offset < r->length && length <= r->length - offset);
  FUZZ_CHECK(a->addr == r->addr + offset && a->rkey == r->rkey);
  return 0;
}
