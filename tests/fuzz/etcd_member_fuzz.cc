// Fuzzes what a client reads from etcd about the cluster: member records (JSON
// written by any process that can write under the cluster's prefix), the
// base64 of the JSON gateway's keys and values, and the etcd:// address a user
// types, and the gateway's replies (range, put, delete, lease grant and
// keep-alive, watch messages). A malformed record or reply must be refused with
// a message, never crash the engine or the CLI nor convert a number undefinedly;
// what decodes must encode and decode to the same member.
#include <string>
#include <string_view>

#include "fuzz_util.h"
#include "kvstore/cluster/etcd_client.h"
#include "kvstore/cluster/etcd_decode.h"
#include "kvstore/cluster/membership.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvstore::cluster;
  std::string_view text(reinterpret_cast<const char*>(data), size);

  if (auto m = DecodeMember(text); m.ok()) {
    FUZZ_CHECK(!m->id.empty() && !m->address.empty());
    auto again = DecodeMember(EncodeMember(*m));
    FUZZ_CHECK(again.ok());
    FUZZ_CHECK(*again == *m);
  }

  if (auto raw = Base64Decode(text); raw.ok()) {
    auto back = Base64Decode(Base64Encode(*raw));
    FUZZ_CHECK(back.ok() && *back == *raw);
  }
  auto enc = Base64Encode(text);
  auto dec = Base64Decode(enc);
  FUZZ_CHECK(dec.ok() && *dec == text);

  if (auto url = ParseClusterUrl(text); url.ok()) {
    FUZZ_CHECK(!url->endpoints.empty());
    FUZZ_CHECK(!url->name.empty());
    FUZZ_CHECK(MembersPrefix(*url).find(url->name) != std::string::npos);
  }
  (void)IsClusterUrl(text);

  if (auto range = DecodeEtcdRangeReply(text); range.ok()) {
    for (const auto& kv : range->kvs) {
      FUZZ_CHECK(Base64Decode(Base64Encode(kv.key)).ok());
    }
  } else {
    FUZZ_CHECK(!range.status().message().empty());
  }
  (void)DecodeEtcdPutReply(text);
  if (auto n = DecodeEtcdDeleteReply(text); n.ok()) FUZZ_CHECK(*n >= 0);
  if (auto id = DecodeEtcdLeaseGrantReply(text); id.ok()) FUZZ_CHECK(*id != 0);
  (void)DecodeEtcdLeaseKeepAliveReply(text);
  (void)DecodeEtcdWatchMessage(text);
  return 0;
}
