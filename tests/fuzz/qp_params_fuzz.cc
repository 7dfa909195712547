// Fuzzes QpParams::Decode (the peer's queue-pair parameters in Hello's
// rdmaParams). Its header promises that a decoded value re-encodes to the same
// bytes and that the fields are in their ranges.
#include <cstring>

#include "fuzz_util.h"
#include "kvstore/rdma/qp_params.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvstore;
  using namespace kvstore::rdma;
  auto p = QpParams::Decode(fuzz::Bytes(data, size));
  if (!p.ok()) {
    FUZZ_CHECK(p.status().code() == StatusCode::kInvalidArgument);
    return 0;
  }
  FUZZ_CHECK(p->qpn >= 1 && p->qpn <= kMaxQpn && p->psn <= kMaxQpn);
  FUZZ_CHECK(p->port >= 1 && p->max_rd_atomic >= 1);
  FUZZ_CHECK(MtuBytes(p->mtu) != 0);
  auto again = p->Encode();
  FUZZ_CHECK(again.size() == size && std::memcmp(again.data(), data, size) == 0);
  (void)p->ToString();
  FUZZ_CHECK(MtuBytes(PathMtu(p->mtu, IBV_MTU_4096)) != 0);
  return 0;
}
