// Fuzzes FrameHeader::Decode, the first thing kvstored and the client read from
// a socket. A header it accepts must be within bounds and re-encode to the
// same 16 bytes.
#include <cstring>

#include "fuzz_util.h"
#include "kvstore/frame.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvstore;
  if (size < kFrameHeaderSize) return 0;
  uint64_t max_bulk = 256ull << 20;
  if (size >= kFrameHeaderSize + 8) std::memcpy(&max_bulk, data + kFrameHeaderSize, 8);
  std::byte in[kFrameHeaderSize];
  std::memcpy(in, data, kFrameHeaderSize);
  auto h = FrameHeader::Decode(in, max_bulk);
  if (!h.ok()) {
    FUZZ_CHECK(h.status().code() == StatusCode::kInvalidArgument);
    return 0;
  }
  FUZZ_CHECK(h->control_len > 0 && h->control_len % 8 == 0 && h->control_len <= kMaxControlBytes);
  FUZZ_CHECK(h->bulk_len <= max_bulk);
  std::byte out[kFrameHeaderSize];
  h->Encode(out);
  FUZZ_CHECK(std::memcmp(in, out, kFrameHeaderSize) == 0);
  return 0;
}
