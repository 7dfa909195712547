#include "kvstore/rdma/negotiation.h"

#include <gtest/gtest.h>

namespace kvstore::rdma {
namespace {

std::vector<std::byte> ValidParams() {
  QpParams p;
  p.lid = 5;
  p.qpn = 0x77;
  p.psn = 0x1234;
  p.mtu = IBV_MTU_2048;
  return p.Encode();
}

TEST(Negotiation, BothEndsWithDevicesChooseRdma) {
  const auto c = NegotiateBulkTransport(true, ValidParams());
  EXPECT_EQ(c.transport, BulkTransport::kRdma);
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
    BulkTransport want;
    const char* reason;
  } cases[] = {
      {"both", true, &valid, BulkTransport::kRdma, "both ends"},
      {"local only", true, &none, BulkTransport::kTcp, "peer has no RDMA device"},
      {"peer only", false, &valid, BulkTransport::kTcp, "no local RDMA device"},
      {"neither", false, &none, BulkTransport::kTcp, "no local RDMA device"},
      {"garbage", true, &garbage, BulkTransport::kTcp, "rejected"},
      {"truncated", true, &truncated, BulkTransport::kTcp, "length"},
      {"bad version", true, &bad_version, BulkTransport::kTcp, "version"},
  };
  for (const auto& c : cases) {
    const auto got = NegotiateBulkTransport(c.local, *c.peer, "");
    EXPECT_EQ(got.transport, c.want) << c.name;
    EXPECT_EQ(got.peer_params.has_value(), c.want == BulkTransport::kRdma) << c.name;
    EXPECT_NE(got.reason.find(c.reason), std::string::npos) << c.name << ": " << got.reason;
  }
}

// The Hello exchange as the header describes it: both ends agree.
TEST(Negotiation, BothEndsAgree) {
  for (bool client_dev : {false, true}) {
    for (bool server_dev : {false, true}) {
      const auto client_hello = client_dev ? ValidParams() : std::vector<std::byte>{};
      const auto server = NegotiateBulkTransport(server_dev, client_hello);
      const auto server_reply =
          server.transport == BulkTransport::kRdma ? ValidParams() : std::vector<std::byte>{};
      const auto client = NegotiateBulkTransport(client_dev, server_reply);
      EXPECT_EQ(client.transport, server.transport) << client_dev << server_dev;
      EXPECT_EQ(server.transport == BulkTransport::kRdma, client_dev && server_dev);
    }
  }
}

TEST(Negotiation, LocalReasonIsCarried) {
  const auto c = NegotiateBulkTransport(false, {}, "ibv_get_device_list returned NULL");
  EXPECT_NE(c.reason.find("ibv_get_device_list returned NULL"), std::string::npos) << c.reason;
}

TEST(Negotiation, LogsEachChoiceOnce) {
  TransportChoice c;
  c.reason = "negotiation test reason";
  EXPECT_TRUE(LogTransportChoiceOnce(c));
  EXPECT_FALSE(LogTransportChoiceOnce(c));
  EXPECT_FALSE(LogTransportChoiceOnce(c));
  EXPECT_EQ(BulkTransportName(BulkTransport::kRdma), "rdma");
}

}  // namespace
}  // namespace kvstore::rdma
