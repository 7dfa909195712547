// Fuzzes what kvstored does with one frame off the socket before any store
// state is involved: FrameHeader::Decode, the Cap'n Proto reader with the
// daemon's limits (WireReaderOptions), and every conversion the connection
// applies to a request's fields (keys, metadata, region descriptors and
// one-sided slices, queue-pair parameters). Cap'n Proto throws kj::Exception
// on a malformed message; the daemon catches it (connection.cc), so the fuzzer
// does too. Anything else escaping, or a sanitizer report, is a finding.
//
// Input: 16-byte frame header | control words (the header's control_len).
#include <cstring>

#include <capnp/serialize.h>
#include <kj/array.h>

#include "fuzz_util.h"
#include "kvstore/rdma/qp_params.h"
#include "kvstore/transport/transport.h"
#include "kvstore/wire_convert.h"

namespace {

using namespace kvstore;

std::span<const std::byte> Bytes(capnp::Data::Reader d) {
  return {reinterpret_cast<const std::byte*>(d.begin()), d.size()};
}

// As Connection::ParseKeys: the count is checked first (ServerOptions'
// max_keys_per_request default), then keys until the first bad one. Returns
// how many parsed, or -1 when the request is refused.
constexpr size_t kMaxKeysPerRequest = 65536;

long Keys(capnp::List<capnp::Data>::Reader keys) {
  if (keys.size() > kMaxKeysPerRequest) return -1;
  for (auto k : keys) {
    auto key = KeyFromWire(k);
    if (!key.ok()) {
      FUZZ_CHECK(k.size() != Key::kSize);
      return -1;
    }
    FUZZ_CHECK(std::memcmp(key->bytes.data(), k.begin(), Key::kSize) == 0);
  }
  return static_cast<long>(keys.size());
}

bool Slice(const transport::RegionTable& regions, wire::RemoteBuffer::Reader b) {
  auto a = regions.Resolve({b.getRegion(), b.getOffset(), b.getLength(), Bytes(b.getDescriptor())});
  if (a.ok()) FUZZ_CHECK(b.getLength() > 0);
  return a.ok();
}

void Walk(wire::Request::Reader req) {
  transport::RegionTable regions;
  (void)req.getId();
  switch (req.which()) {
    case wire::Request::HELLO: {
      auto h = req.getHello();
      (void)h.getProtocolVersion();
      (void)std::string(h.getToken().cStr());
      (void)std::string(h.getClientName().cStr());
      (void)rdma::QpParams::Decode(Bytes(h.getRdmaParams()));
      (void)h.getLocalOffer().size();
      break;
    }
    case wire::Request::INSERT: {
      auto r = req.getInsert();
      (void)KeyFromWire(r.getKey());
      EntryMeta m = MetaFromWire(r.getMeta());
      (void)m;
      (void)r.getTtlMs();
      if (r.hasSource()) Slice(regions, r.getSource());
      (void)r.getChecksumTrailer();
      (void)r.getChecksumByStore();
      break;
    }
    case wire::Request::SELECT:
    case wire::Request::DROP_SELECT: {
      auto r = req.which() == wire::Request::SELECT ? req.getSelect() : req.getDropSelect();
      const long n = Keys(r.getKeys());
      (void)r.getTimeoutMs();
      // As Connection::HandleSelect: one destination per key, or none.
      if (n > 0 && r.getDestinations().size() == static_cast<size_t>(n)) {
        for (auto b : r.getDestinations()) {
          if (!Slice(regions, b)) break;
        }
      }
      break;
    }
    case wire::Request::MATCH_PREFIX:
      Keys(req.getMatchPrefix().getKeys());
      break;
    case wire::Request::REMOVE:
      Keys(req.getRemove().getKeys());
      break;
    case wire::Request::RETAIN:
      Keys(req.getRetain().getKeys());
      break;
    case wire::Request::LIST: {
      auto l = req.getList();
      (void)Bytes(l.getCursor()).size();
      (void)Bytes(l.getPrefix()).size();
      (void)l.getLimit();
      (void)l.getTierFilter();
      break;
    }
    case wire::Request::REGISTER_REGION: {
      auto a = req.getRegisterRegion();
      Status s = regions.Add(a.getId(), Bytes(a.getDescriptor()));
      if (s.ok()) {
        FUZZ_CHECK(regions.size() == 1);
        auto r = rdma::RemoteRegion::Decode(Bytes(a.getDescriptor()));
        FUZZ_CHECK(r.ok());
        // The whole region resolves; one byte past it does not.
        FUZZ_CHECK(regions.Resolve({a.getId(), 0, r->length, {}}).ok());
        FUZZ_CHECK(!regions.Resolve({a.getId(), 1, r->length, {}}).ok());
        FUZZ_CHECK(regions.Remove(a.getId()).ok());
      }
      break;
    }
    case wire::Request::UNREGISTER_REGION:
      FUZZ_CHECK(!regions.Remove(req.getUnregisterRegion()).ok());
      break;
    case wire::Request::ACK_DELIVERY:
      (void)req.getAckDelivery();
      break;
    default:
      break;  // stats, ping, or a newer client's request: nothing to convert
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kFrameHeaderSize) return 0;
  std::byte hdr[kFrameHeaderSize];
  std::memcpy(hdr, data, kFrameHeaderSize);
  auto h = FrameHeader::Decode(hdr, 256ull << 20);
  if (!h.ok()) return 0;
  // The daemon reads exactly control_len bytes. The fuzzer reads what the
  // input holds (zero-filled to a whole word) so that huge declared lengths do
  // not turn every execution into a 4 MiB memset; the bounds checks the reader
  // applies are the same either way.
  const size_t avail = size - kFrameHeaderSize;
  const size_t len = std::max<size_t>(8, std::min<size_t>(h->control_len, (avail + 7) / 8 * 8));
  auto words = kj::heapArray<capnp::word>(len / sizeof(capnp::word));
  std::memset(words.begin(), 0, len);
  std::memcpy(words.begin(), data + kFrameHeaderSize, std::min(avail, len));
  try {
    capnp::FlatArrayMessageReader reader(words.asPtr(), WireReaderOptions());
    Walk(reader.getRoot<wire::Request>());
  } catch (const kj::Exception&) {
    // Malformed: the daemon answers InvalidArgument and reads the next frame.
  }
  return 0;
}
