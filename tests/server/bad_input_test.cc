// Garbage, malformed frames, oversized messages, unknown ops and stalled
// transfers: each gets a clear error or a closed connection, and the daemon
// keeps serving everybody else with nothing lost.
#include <cstring>

#include <capnp/message.h>
#include <capnp/serialize.h>

#include "kvstore/wire_convert.h"

#include "raw_conn.h"
#include "test_util.h"

namespace kvstore::testing {
namespace {

using namespace std::chrono_literals;

class BadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_ = StartDaemon({"--stall-timeout", "500ms", "--max-value", "16MiB"});
    ASSERT_NE(daemon_, nullptr);
    client_ = ConnectTo(*daemon_);
    ASSERT_NE(client_, nullptr);
    ASSERT_OK(client_->Insert(TestKey(1), RandomBytes(50000, 1)));
  }
  // The daemon still serves, and what was stored is intact.
  void ExpectHealthy() {
    ASSERT_TRUE(daemon_->running()) << daemon_->Log();
    auto fresh = ConnectTo(*daemon_);
    ASSERT_NE(fresh, nullptr);
    std::vector<Key> keys{TestKey(1)};
    auto got = fresh->Select(keys);
    ASSERT_OK(got);
    EXPECT_EQ((*got)[0].value, RandomBytes(50000, 1));
    ASSERT_OK(client_->Ping());
  }
  capnp::MallocMessageBuilder* Ping(uint64_t id) {
    msg_ = std::make_unique<capnp::MallocMessageBuilder>();
    auto r = msg_->initRoot<wire::Request>();
    r.setId(id);
    r.setPing();
    return msg_.get();
  }
  // An insert request as a client would send it, with the size and checksum given.
  capnp::MallocMessageBuilder* Insert(uint64_t id, const Key& key, uint64_t size,
                                      uint64_t checksum = 0) {
    msg_ = std::make_unique<capnp::MallocMessageBuilder>();
    auto r = msg_->initRoot<wire::Request>();
    r.setId(id);
    auto ins = r.initInsert();
    ins.setKey(KeyToWire(key));
    ins.initMeta().setSize(size);
    ins.getMeta().setChecksum(checksum);
    return msg_.get();
  }
  std::unique_ptr<TestDaemon> daemon_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<capnp::MallocMessageBuilder> msg_;
};

TEST_F(BadInput, GarbageBytesCloseTheConnection) {
  RawConn raw(daemon_->address());
  ASSERT_TRUE(raw.connected());
  ASSERT_TRUE(raw.SendBytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n and some more garbage bytes"));
  auto reply = raw.ReadReply();
  ASSERT_TRUE(reply.has_value());  // told why before the close
  EXPECT_EQ(reply->code, wire::Code::INVALID_ARGUMENT);
  EXPECT_NE(reply->message.find("magic"), std::string::npos) << reply->message;
  EXPECT_TRUE(raw.ClosedByPeer());
  ExpectHealthy();
  EXPECT_GE(
      daemon_->Metric("kvstore_protocol_errors_total", {{"reason", "bad_header"}}).value_or(0),
      1.0);
}

TEST_F(BadInput, OversizedControlLengthIsRefused) {
  RawConn raw(daemon_->address());
  FrameHeader h;
  h.control_len = 1u << 30;  // 1 GiB control message
  std::byte buf[kFrameHeaderSize];
  h.Encode(buf);
  ASSERT_TRUE(raw.SendBytes(std::span<const std::byte>(buf, sizeof(buf))));
  auto reply = raw.ReadReply();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->code, wire::Code::INVALID_ARGUMENT);
  EXPECT_TRUE(raw.ClosedByPeer());
  ExpectHealthy();
}

TEST_F(BadInput, OversizedValueIsRefusedBeforeAnyByteIsRead) {
  RawConn raw(daemon_->address());
  FrameHeader h;
  h.control_len = 64;
  h.bulk_len = 1ull << 40;  // 1 TiB
  std::byte buf[kFrameHeaderSize];
  h.Encode(buf);
  ASSERT_TRUE(raw.SendBytes(std::span<const std::byte>(buf, sizeof(buf))));
  auto reply = raw.ReadReply();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->code, wire::Code::INVALID_ARGUMENT);
  EXPECT_NE(reply->message.find("exceeds"), std::string::npos) << reply->message;
  EXPECT_TRUE(raw.ClosedByPeer());
  ExpectHealthy();
}

TEST_F(BadInput, MalformedMessageGetsAnErrorAndTheConnectionGoesOn) {
  RawConn raw(daemon_->address());
  // A valid header around 32 bytes that are not a Cap'n Proto message.
  FrameHeader h;
  h.control_len = 32;
  std::byte buf[kFrameHeaderSize];
  h.Encode(buf);
  std::vector<std::byte> junk(32, std::byte{0xff});
  ASSERT_TRUE(raw.SendBytes(std::span<const std::byte>(buf, sizeof(buf))));
  ASSERT_TRUE(raw.SendBytes(junk));
  auto reply = raw.ReadReply();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->code, wire::Code::INVALID_ARGUMENT);
  EXPECT_NE(reply->message.find("malformed"), std::string::npos) << reply->message;
  // Same connection, next request works.
  ASSERT_TRUE(raw.SendFrame(*Ping(7), {}));
  auto pong = raw.ReadReply();
  ASSERT_TRUE(pong.has_value());
  EXPECT_EQ(pong->code, wire::Code::OK);
  EXPECT_EQ(pong->id, 7u);
  ExpectHealthy();
}

TEST_F(BadInput, UnknownOpAndWrongKeyLengthAreInvalidArgument) {
  RawConn raw(daemon_->address());
  {
    // A union discriminant from a newer protocol: set the tag word by hand.
    capnp::MallocMessageBuilder msg;
    auto r = msg.initRoot<wire::Request>();
    r.setId(5);
    r.setPing();
    auto words = capnp::messageToFlatArray(msg);
    // Root struct data section starts after the segment table (8 bytes) and the root pointer
    // (8 bytes); the union tag is the UInt16 after the 8-byte id.
    auto* bytes = reinterpret_cast<uint8_t*>(words.begin());
    bytes[16 + 8] = 200;
    FrameHeader h;
    h.control_len = static_cast<uint32_t>(words.size() * 8);
    std::byte hb[kFrameHeaderSize];
    h.Encode(hb);
    ASSERT_TRUE(raw.SendBytes(std::span<const std::byte>(hb, sizeof(hb))));
    ASSERT_TRUE(raw.SendBytes(
        std::span<const std::byte>(reinterpret_cast<const std::byte*>(bytes), h.control_len)));
    auto reply = raw.ReadReply();
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->code, wire::Code::INVALID_ARGUMENT);
    EXPECT_NE(reply->message.find("unknown request"), std::string::npos) << reply->message;
  }
  {
    capnp::MallocMessageBuilder msg;
    auto r = msg.initRoot<wire::Request>();
    r.setId(6);
    auto keys = r.initMatchPrefix().initKeys(1);
    std::vector<kj::byte> short_key(5, 1);
    keys.set(0, {short_key.data(), short_key.size()});
    ASSERT_TRUE(raw.SendFrame(msg, {}));
    auto reply = raw.ReadReply();
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->code, wire::Code::INVALID_ARGUMENT);
    EXPECT_NE(reply->message.find("32 bytes"), std::string::npos) << reply->message;
  }
  ASSERT_TRUE(raw.SendFrame(*Ping(8), {}));
  auto pong = raw.ReadReply();
  ASSERT_TRUE(pong.has_value());
  EXPECT_EQ(pong->code, wire::Code::OK);
  ExpectHealthy();
}

TEST_F(BadInput, InsertWhoseSizeDisagreesWithItsFrameIsRefused) {
  RawConn raw(daemon_->address());
  Key k = TestKey(2);
  auto value = RandomBytes(1000, 2);
  ASSERT_TRUE(raw.SendFrame(*Insert(9, k, 999), value));  // frame carries 1000
  auto reply = raw.ReadReply();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->code, wire::Code::INVALID_ARGUMENT);
  // Bad checksum: stored bytes are verified against the declared checksum.
  ASSERT_TRUE(raw.SendFrame(*Insert(10, k, 1000, ValueChecksum(value) ^ 1), value));
  auto reply2 = raw.ReadReply();
  ASSERT_TRUE(reply2.has_value());
  EXPECT_EQ(reply2->code, wire::Code::DATA_LOSS);
  std::vector<Key> keys{k};
  EXPECT_EQ(*client_->MatchPrefix(keys), 0u);
  EXPECT_GE(daemon_->Metric("kvstore_checksum_failures_total").value_or(0), 1.0);
  ExpectHealthy();
}

TEST_F(BadInput, ChecksumTrailerIsVerifiedAndItsLengthChecked) {
  RawConn raw(daemon_->address());
  Key k = TestKey(3);
  auto value = RandomBytes(3000, 3);
  auto with_trailer = [&](uint64_t checksum) {
    std::vector<std::byte> bulk = value;
    bulk.resize(value.size() + sizeof(checksum));
    std::memcpy(bulk.data() + value.size(), &checksum, sizeof(checksum));
    return bulk;
  };
  auto trailer_insert = [&](uint64_t id) {
    auto* m = Insert(id, k, value.size());
    m->getRoot<wire::Request>().getInsert().setChecksumTrailer(true);
    return m;
  };
  // The frame carries the value but not the 8 trailer bytes it promised.
  ASSERT_TRUE(raw.SendFrame(*trailer_insert(11), value));
  auto short_reply = raw.ReadReply();
  ASSERT_TRUE(short_reply.has_value());
  EXPECT_EQ(short_reply->code, wire::Code::INVALID_ARGUMENT);
  // A trailer that does not match the bytes: nothing is stored.
  ASSERT_TRUE(raw.SendFrame(*trailer_insert(12), with_trailer(ValueChecksum(value) ^ 4)));
  auto bad = raw.ReadReply();
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->code, wire::Code::DATA_LOSS);
  std::vector<Key> keys{k};
  EXPECT_EQ(*client_->MatchPrefix(keys), 0u);
  // The right trailer: stored, and it reads back with that checksum.
  ASSERT_TRUE(raw.SendFrame(*trailer_insert(13), with_trailer(ValueChecksum(value))));
  auto good = raw.ReadReply();
  ASSERT_TRUE(good.has_value());
  EXPECT_EQ(good->code, wire::Code::OK);
  auto got = client_->Select(keys);
  ASSERT_OK(got);
  EXPECT_EQ((*got)[0].value, value);
  EXPECT_EQ((*got)[0].meta.checksum, ValueChecksum(value));
  ExpectHealthy();
}

TEST_F(BadInput, ValueArrivingInSmallSlowPiecesIsStoredWhole) {
  // The daemon waits for large pieces of a value; a sender that dribbles
  // (pieces far below that, the last one odd-sized) must still be heard out.
  RawConn raw(daemon_->address());
  Key k = TestKey(6);
  auto value = RandomBytes((1 << 20) + 4097, 6);
  OutFrame f = EncodeFrame(*Insert(14, k, value.size(), ValueChecksum(value)), value.size());
  ASSERT_TRUE(raw.SendBytes(f.header));
  ASSERT_TRUE(raw.SendBytes(f.control_bytes()));
  std::span<const std::byte> rest(value);
  while (!rest.empty()) {
    size_t n = std::min<size_t>(rest.size(), 60000);
    ASSERT_TRUE(raw.SendBytes(rest.first(n)));
    rest = rest.subspan(n);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  auto reply = raw.ReadReply();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->code, wire::Code::OK) << reply->message;
  std::vector<Key> keys{k};
  auto got = client_->Select(keys);
  ASSERT_OK(got);
  EXPECT_EQ((*got)[0].value, value);
  ExpectHealthy();
}

TEST_F(BadInput, StallHalfwayClosesTheConnectionAndLeavesNothing) {
  auto before = client_->Stats();
  ASSERT_OK(before);
  RawConn raw(daemon_->address());
  Key k = TestKey(3);
  auto value = RandomBytes(4 << 20, 3);
  // Header, control and half the value; then nothing.
  OutFrame f = EncodeFrame(*Insert(11, k, value.size(), ValueChecksum(value)), value.size());
  ASSERT_TRUE(raw.SendBytes(f.header));
  ASSERT_TRUE(raw.SendBytes(f.control_bytes()));
  ASSERT_TRUE(raw.SendBytes(std::span<const std::byte>(value).subspan(0, value.size() / 2)));
  // Meanwhile other clients are served.
  ASSERT_OK(client_->Insert(TestKey(4), RandomBytes(1000, 4)));
  EXPECT_TRUE(raw.ClosedByPeer(5000));
  std::vector<Key> keys{k};
  EXPECT_EQ(*client_->MatchPrefix(keys), 0u);
  auto after = client_->Stats();
  ASSERT_OK(after);
  // Only the 1000-byte insert was added; the half insert's slot was freed.
  EXPECT_EQ(after->tiers[0].bytes, before->tiers[0].bytes + 1000);
  EXPECT_GE(daemon_->Metric("kvstore_protocol_errors_total", {{"reason", "stalled"}}).value_or(0),
            1.0);
  // A header cut short stalls too.
  RawConn raw2(daemon_->address());
  ASSERT_TRUE(raw2.SendBytes(std::span<const std::byte>(f.header).subspan(0, 5)));
  EXPECT_TRUE(raw2.ClosedByPeer(5000));
  ExpectHealthy();
}

TEST_F(BadInput, VanishingMidInsertLeavesNothing) {
  auto before = client_->Stats();
  ASSERT_OK(before);
  {
    RawConn raw(daemon_->address());
    OutFrame f = EncodeFrame(*Insert(12, TestKey(5), 8 << 20), 8 << 20);
    ASSERT_TRUE(raw.SendBytes(f.header));
    ASSERT_TRUE(raw.SendBytes(f.control_bytes()));
    ASSERT_TRUE(raw.SendBytes(RandomBytes(1 << 20, 5)));
  }  // closed
  ASSERT_TRUE(Eventually([&] { return daemon_->Metric("kvstore_connected_clients") == 1.0; }));
  auto after = client_->Stats();
  ASSERT_OK(after);
  EXPECT_EQ(after->tiers[0].used_bytes, before->tiers[0].used_bytes);
  EXPECT_EQ(after->tiers[0].entries, before->tiers[0].entries);
  ExpectHealthy();
}

TEST_F(BadInput, UnacknowledgedDropSelectGoesBackToTheStore) {
  Key k = TestKey(6);
  auto value = RandomBytes(100000, 6);
  ASSERT_OK(client_->Insert(k, value));
  {
    RawConn raw(daemon_->address());
    capnp::MallocMessageBuilder msg;
    auto r = msg.initRoot<wire::Request>();
    r.setId(13);
    auto sel = r.initDropSelect();
    sel.initKeys(1).set(0, KeyToWire(k));
    sel.setTimeoutMs(1000);
    ASSERT_TRUE(raw.SendFrame(msg, {}));
    auto reply = raw.ReadReply();
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->code, wire::Code::OK);
    EXPECT_EQ(reply->bulk, value);
    // While unacknowledged the entry is held: invisible to others.
    std::vector<Key> keys{k};
    EXPECT_EQ(*client_->MatchPrefix(keys), 0u);
  }  // vanished without the ack
  std::vector<Key> keys{k};
  ASSERT_TRUE(Eventually([&] { return client_->MatchPrefix(keys).value() == 1u; }));
  auto got = client_->DropSelect(keys, 1s);
  ASSERT_OK(got);
  EXPECT_EQ((*got)[0].value, value);
  EXPECT_GE(daemon_->Metric("kvstore_redeliveries_total").value_or(0), 1.0);
  ExpectHealthy();
}

}  // namespace
}  // namespace kvstore::testing
