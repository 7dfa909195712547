// The one transport choice (kvstore/transport/negotiation.h): rdma only when
// both ends have a device and the peer's params decode, local only on the
// Unix socket when both ends share memory, tcp otherwise; both ends agree.
#include "kvstore/transport/negotiation.h"

#include <gtest/gtest.h>

namespace kvstore::transport {
namespace {

std::vector<std::byte> ValidParams() {
  rdma::QpParams p;
  p.lid = 5;
  p.qpn = 0x77;
  p.psn = 0x1234;
  p.mtu = IBV_MTU_2048;
  return p.Encode();
}

// Over TCP, as the server sees a client's rdmaParams.
Choice OverTcp(bool local_rdma, std::span<const std::byte> peer,
               std::string_view unavailable = "") {
  NegotiationInput in;
  in.local_rdma = local_rdma;
  in.local_rdma_unavailable = unavailable;
  in.peer_rdma_params = peer;
  return Negotiate(in);
}

TEST(Negotiation, BothEndsWithDevicesChooseRdma) {
  const auto c = OverTcp(true, ValidParams());
  EXPECT_EQ(c.kind, Kind::kRdma);
  ASSERT_TRUE(c.peer_params.has_value());
  EXPECT_EQ(c.peer_params->qpn, 0x77u);
}

TEST(Negotiation, Table) {
  const auto valid = ValidParams();
  auto bad_version = valid;
  bad_version[0] = std::byte{99};
  const std::vector<std::byte> garbage(32, std::byte{0xff});
  const std::vector<std::byte> truncated(valid.begin(), valid.begin() + 10);
  const std::vector<std::byte> none;
  const struct {
    const char* name;
    bool local;
    const std::vector<std::byte>* peer;
    Kind want;
    const char* reason;
  } cases[] = {
      {"both", true, &valid, Kind::kRdma, "both ends"},
      {"local only", true, &none, Kind::kTcp, "peer has no RDMA device"},
      {"peer only", false, &valid, Kind::kTcp, "no local RDMA device"},
      {"neither", false, &none, Kind::kTcp, "no local RDMA device"},
      {"garbage", true, &garbage, Kind::kTcp, "rejected"},
      {"truncated", true, &truncated, Kind::kTcp, "length"},
      {"bad version", true, &bad_version, Kind::kTcp, "version"},
  };
  for (const auto& c : cases) {
    const auto got = OverTcp(c.local, *c.peer);
    EXPECT_EQ(got.kind, c.want) << c.name;
    EXPECT_EQ(got.peer_params.has_value(), c.want == Kind::kRdma) << c.name;
    EXPECT_NE(got.reason.find(c.reason), std::string::npos) << c.name << ": " << got.reason;
  }
}

// The Hello exchange as the header describes it: both ends agree.
TEST(Negotiation, BothEndsAgree) {
  for (bool client_dev : {false, true}) {
    for (bool server_dev : {false, true}) {
      const auto client_hello = client_dev ? ValidParams() : std::vector<std::byte>{};
      const auto server = OverTcp(server_dev, client_hello);
      const auto server_reply =
          server.kind == Kind::kRdma ? ValidParams() : std::vector<std::byte>{};
      NegotiationInput in;
      in.server = false;
      in.local_rdma = client_dev;
      in.peer_rdma_params = server_reply;
      const auto client = Negotiate(in);
      EXPECT_EQ(client.kind, server.kind) << client_dev << server_dev;
      EXPECT_EQ(server.kind == Kind::kRdma, client_dev && server_dev);
    }
  }
  // On the Unix socket: local exactly when both share memory, seen from either end.
  for (bool client_shares : {false, true}) {
    for (bool store_serves : {false, true}) {
      NegotiationInput s{true, true, store_serves, client_shares, false, "", {}};
      const auto server = Negotiate(s);
      NegotiationInput c{false, true, client_shares, server.kind == Kind::kLocal, false, "", {}};
      EXPECT_EQ(Negotiate(c).kind, server.kind) << client_shares << store_serves;
      EXPECT_EQ(server.kind == Kind::kLocal, client_shares && store_serves);
    }
  }
}

TEST(Negotiation, LocalReasonIsCarried) {
  const auto c = OverTcp(false, {}, "ibv_get_device_list returned NULL");
  EXPECT_NE(c.reason.find("ibv_get_device_list returned NULL"), std::string::npos) << c.reason;
  NegotiationInput off{true, true, false, true, false, "", {}};
  EXPECT_NE(Negotiate(off).reason.find("--no-local-transport"), std::string::npos);
}

TEST(Negotiation, LogsEachChoiceOncePerOwner) {
  Choice c;
  c.reason = "negotiation test reason";
  ChoiceLog log;
  EXPECT_TRUE(log.LogOnce(c));
  EXPECT_FALSE(log.LogOnce(c));
  EXPECT_FALSE(log.LogOnce(c));
  ChoiceLog another_daemon;
  EXPECT_TRUE(another_daemon.LogOnce(c));
  EXPECT_EQ(KindName(Kind::kRdma), "rdma");
}

}  // namespace
}  // namespace kvstore::transport
