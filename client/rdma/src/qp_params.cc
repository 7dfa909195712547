#include "kvstore/rdma/qp_params.h"

#include <algorithm>
#include <cstdio>

#include "byte_io.h"

namespace kvstore::rdma {

using internal::GetLe;
using internal::PutLe;

bool QpParams::HasGid() const {
  return std::any_of(gid.begin(), gid.end(), [](uint8_t b) { return b != 0; });
}

std::vector<std::byte> QpParams::Encode() const {
  std::vector<std::byte> out(kQpParamsEncodedSize);
  std::span<std::byte> s(out);
  PutLe<uint8_t>(s, 0, kQpParamsVersion);
  PutLe<uint8_t>(s, 1, port);
  PutLe<uint8_t>(s, 2, gid_index);
  PutLe<uint8_t>(s, 3, static_cast<uint8_t>(mtu));
  PutLe<uint16_t>(s, 4, lid);
  PutLe<uint8_t>(s, 6, max_rd_atomic);
  PutLe<uint8_t>(s, 7, 0);
  PutLe<uint32_t>(s, 8, qpn);
  PutLe<uint32_t>(s, 12, psn);
  for (size_t i = 0; i < gid.size(); ++i) PutLe<uint8_t>(s, 16 + i, gid[i]);
  return out;
}

Result<QpParams> QpParams::Decode(std::span<const std::byte> bytes) {
  auto bad = [](std::string what) {
    return Status::InvalidArgument("rdma params: " + std::move(what));
  };
  if (bytes.size() != kQpParamsEncodedSize) {
    return bad("length " + std::to_string(bytes.size()) + ", want " +
               std::to_string(kQpParamsEncodedSize));
  }
  const auto version = GetLe<uint8_t>(bytes, 0);
  if (version != kQpParamsVersion) {
    return bad("version " + std::to_string(version) + ", want " + std::to_string(kQpParamsVersion));
  }
  QpParams p;
  p.port = GetLe<uint8_t>(bytes, 1);
  p.gid_index = GetLe<uint8_t>(bytes, 2);
  const auto mtu = GetLe<uint8_t>(bytes, 3);
  p.lid = GetLe<uint16_t>(bytes, 4);
  p.max_rd_atomic = GetLe<uint8_t>(bytes, 6);
  const auto reserved = GetLe<uint8_t>(bytes, 7);
  p.qpn = GetLe<uint32_t>(bytes, 8);
  p.psn = GetLe<uint32_t>(bytes, 12);
  for (size_t i = 0; i < p.gid.size(); ++i) p.gid[i] = GetLe<uint8_t>(bytes, 16 + i);

  if (p.port == 0) return bad("port 0");
  if (mtu < IBV_MTU_256 || mtu > IBV_MTU_4096) return bad("mtu " + std::to_string(mtu));
  p.mtu = static_cast<ibv_mtu>(mtu);
  if (p.max_rd_atomic == 0) return bad("max_rd_atomic 0");
  if (reserved != 0) return bad("reserved byte " + std::to_string(reserved));
  if (p.qpn == 0 || p.qpn > kMaxQpn) return bad("qpn " + std::to_string(p.qpn));
  if (p.psn > kMaxQpn) return bad("psn " + std::to_string(p.psn));
  if (p.lid == 0 && !p.HasGid()) return bad("neither lid nor gid set");
  return p;
}

std::string QpParams::ToString() const {
  char buf[160];
  std::snprintf(buf, sizeof(buf),
                "qpn=0x%06x psn=0x%06x lid=%u port=%u gid_index=%u mtu=%u rd=%u gid=", qpn, psn,
                lid, port, gid_index, MtuBytes(mtu), max_rd_atomic);
  std::string s(buf);
  for (size_t i = 0; i < gid.size(); i += 2) {
    std::snprintf(buf, sizeof(buf), "%s%02x%02x", i ? ":" : "", gid[i], gid[i + 1]);
    s += buf;
  }
  return s;
}

ibv_mtu PathMtu(ibv_mtu a, ibv_mtu b) { return a < b ? a : b; }

uint32_t MtuBytes(ibv_mtu mtu) {
  switch (mtu) {
    case IBV_MTU_256:
      return 256;
    case IBV_MTU_512:
      return 512;
    case IBV_MTU_1024:
      return 1024;
    case IBV_MTU_2048:
      return 2048;
    case IBV_MTU_4096:
      return 4096;
  }
  return 0;
}

}  // namespace kvstore::rdma
