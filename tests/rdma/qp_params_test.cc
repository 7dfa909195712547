#include "kvstore/rdma/qp_params.h"

#include <gtest/gtest.h>

#include <random>

namespace kvstore::rdma {
namespace {

QpParams Sample() {
  QpParams p;
  p.lid = 0x1234;
  for (size_t i = 0; i < p.gid.size(); ++i) p.gid[i] = static_cast<uint8_t>(0xa0 + i);
  p.qpn = 0xabcdef;
  p.psn = 0x123456;
  p.port = 2;
  p.gid_index = 3;
  p.mtu = IBV_MTU_4096;
  p.max_rd_atomic = 16;
  return p;
}

TEST(QpParams, RoundTrip) {
  const QpParams p = Sample();
  const auto bytes = p.Encode();
  ASSERT_EQ(bytes.size(), kQpParamsEncodedSize);
  auto back = QpParams::Decode(bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, p);
}

TEST(QpParams, FixedLittleEndianLayout) {
  const auto b = Sample().Encode();
  EXPECT_EQ(std::to_integer<int>(b[0]), kQpParamsVersion);
  EXPECT_EQ(std::to_integer<int>(b[1]), 2);             // port
  EXPECT_EQ(std::to_integer<int>(b[3]), IBV_MTU_4096);  // mtu
  EXPECT_EQ(std::to_integer<int>(b[4]), 0x34);          // lid, low byte first
  EXPECT_EQ(std::to_integer<int>(b[5]), 0x12);
  EXPECT_EQ(std::to_integer<int>(b[8]), 0xef);  // qpn
  EXPECT_EQ(std::to_integer<int>(b[10]), 0xab);
  EXPECT_EQ(std::to_integer<int>(b[11]), 0x00);
  EXPECT_EQ(std::to_integer<int>(b[16]), 0xa0);  // gid
}

TEST(QpParams, RoundTripWithoutGid) {
  QpParams p = Sample();
  p.gid.fill(0);
  auto back = QpParams::Decode(p.Encode());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_FALSE(back->HasGid());
  EXPECT_EQ(*back, p);
}

void ExpectRejected(std::vector<std::byte> bytes, const std::string& mentions) {
  auto r = QpParams::Decode(bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(mentions), std::string::npos) << r.status().message();
}

TEST(QpParams, RejectsTruncatedAndOverlong) {
  auto b = Sample().Encode();
  for (size_t n = 0; n < b.size(); ++n) {
    ExpectRejected(std::vector<std::byte>(b.begin(), b.begin() + n), "length");
  }
  b.push_back(std::byte{0});
  ExpectRejected(b, "length");
}

TEST(QpParams, RejectsBadFields) {
  const auto good = Sample().Encode();
  auto with = [&](size_t at, uint8_t v) {
    auto b = good;
    b[at] = std::byte{v};
    return b;
  };
  ExpectRejected(with(0, 2), "version");
  ExpectRejected(with(0, 0), "version");
  ExpectRejected(with(1, 0), "port");
  ExpectRejected(with(3, 0), "mtu");
  ExpectRejected(with(3, 6), "mtu");
  ExpectRejected(with(3, 0xff), "mtu");
  ExpectRejected(with(6, 0), "max_rd_atomic");
  ExpectRejected(with(7, 1), "reserved");
  ExpectRejected(with(11, 1), "qpn");  // > 24 bits
  ExpectRejected(with(15, 1), "psn");  // > 24 bits
  auto zero_qpn = good;
  for (size_t i = 8; i < 12; ++i) zero_qpn[i] = std::byte{0};
  ExpectRejected(zero_qpn, "qpn");
  QpParams unreachable = Sample();
  unreachable.lid = 0;
  unreachable.gid.fill(0);
  ExpectRejected(unreachable.Encode(), "neither lid nor gid");
}

// Random bytes never crash the decoder; whatever decodes re-encodes exactly.
TEST(QpParams, FuzzRandomBytes) {
  std::mt19937_64 rng(42);
  int decoded = 0;
  for (int iter = 0; iter < 200000; ++iter) {
    const size_t len = iter % 4 == 0 ? rng() % 64 : kQpParamsEncodedSize;
    std::vector<std::byte> b(len);
    for (auto& x : b) x = static_cast<std::byte>(rng());
    if (len == kQpParamsEncodedSize && iter % 2 == 0) {
      // Bias towards the plausible so the checks past the header run too.
      b[0] = std::byte{kQpParamsVersion};
      b[3] = std::byte{static_cast<uint8_t>(1 + rng() % 6)};
      b[7] = std::byte{0};
      b[11] = std::byte{0};
      b[15] = std::byte{0};
    }
    auto r = QpParams::Decode(b);
    if (r.ok()) {
      ++decoded;
      EXPECT_EQ(r->Encode(), b);
      EXPECT_NE(r->qpn, 0u);
      EXPECT_LE(r->qpn, kMaxQpn);
      EXPECT_NE(MtuBytes(r->mtu), 0u);
    } else {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    }
  }
  EXPECT_GT(decoded, 0);  // the biased half reaches valid values
}

TEST(QpParams, PathMtuIsTheSmaller) {
  EXPECT_EQ(PathMtu(IBV_MTU_4096, IBV_MTU_1024), IBV_MTU_1024);
  EXPECT_EQ(PathMtu(IBV_MTU_512, IBV_MTU_2048), IBV_MTU_512);
  EXPECT_EQ(MtuBytes(IBV_MTU_4096), 4096u);
  // 0 is in ibv_mtu's range but names no MTU (9 would be outside the enum: undefined).
  EXPECT_EQ(MtuBytes(static_cast<ibv_mtu>(0)), 0u);
}

TEST(QpParams, ToStringNamesTheFields) {
  const std::string s = Sample().ToString();
  EXPECT_NE(s.find("qpn=0xabcdef"), std::string::npos) << s;
  EXPECT_NE(s.find("mtu=4096"), std::string::npos) << s;
}

}  // namespace
}  // namespace kvstore::rdma
