// Small frames as they come off the wire: many in one read, one split across
// many reads, and the stall watch that still cuts a frame that stops arriving
// (one timer per connection, moved only when it fires). And a client call
// that outlasts the socket timeout an earlier, shorter call left in force.
#include <netinet/tcp.h>

#include <chrono>
#include <thread>
#include <vector>

#include <capnp/message.h>
#include <xxhash.h>

#include "kvstore/wire_convert.h"

#include "raw_conn.h"
#include "test_util.h"

namespace kvstore::testing {
namespace {

using namespace std::chrono_literals;

class SmallFrames : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_ = StartDaemon({"--stall-timeout", "400ms"});
    ASSERT_NE(daemon_, nullptr);
    client_ = ConnectTo(*daemon_);
    ASSERT_NE(client_, nullptr);
    ASSERT_OK(client_->Insert(TestKey(1), RandomBytes(100, 1)));
  }
  // The bytes of one request frame, as a client would send them: `fill` sets
  // the request's kind.
  template <typename Fill>
  static std::vector<std::byte> Request(uint64_t id, Fill fill,
                                        std::span<const std::byte> bulk = {}) {
    capnp::MallocMessageBuilder msg;
    auto r = msg.initRoot<wire::Request>();
    r.setId(id);
    fill(r);
    OutFrame f = EncodeFrame(msg, bulk.size());
    std::vector<std::byte> out(f.header.begin(), f.header.end());
    auto control = f.control_bytes();
    out.insert(out.end(), control.begin(), control.end());
    out.insert(out.end(), bulk.begin(), bulk.end());
    return out;
  }
  static std::vector<std::byte> Ping(uint64_t id) {
    return Request(id, [](wire::Request::Builder r) { r.setPing(); });
  }
  static std::vector<std::byte> MatchPrefix(uint64_t id, const Key& key) {
    return Request(id, [&](wire::Request::Builder r) {
      r.initMatchPrefix().initKeys(1).set(0, KeyToWire(key));
    });
  }
  static std::vector<std::byte> Select(uint64_t id, const Key& key) {
    return Request(
        id, [&](wire::Request::Builder r) { r.initSelect().initKeys(1).set(0, KeyToWire(key)); });
  }
  // With the value's checksum in its metadata.
  static std::vector<std::byte> Insert(uint64_t id, const Key& key,
                                       std::span<const std::byte> value) {
    return Request(
        id,
        [&](wire::Request::Builder r) {
          auto meta = r.initInsert().initMeta();
          meta.setSize(value.size());
          meta.setChecksum(XXH3_64bits(value.data(), value.size()));
          r.getInsert().setKey(KeyToWire(key));
        },
        value);
  }
  static void Append(std::vector<std::byte>* out, const std::vector<std::byte>& frame) {
    out->insert(out->end(), frame.begin(), frame.end());
  }
  double Stalled() {
    return daemon_->Metric("kvstore_protocol_errors_total", {{"reason", "stalled"}}).value_or(0);
  }

  std::unique_ptr<TestDaemon> daemon_;
  std::unique_ptr<Client> client_;
};

TEST_F(SmallFrames, ManyFramesInOneSendAreAllAnsweredInOrder) {
  // Pings, match_prefixes, an insert whose value sits among them, and a select
  // of that value at the end: one send, several hundred frames.
  constexpr uint64_t kFrames = 300;
  const auto value = RandomBytes(3000, 2);
  std::vector<std::byte> bytes;
  for (uint64_t id = 1; id <= kFrames; ++id) {
    if (id == 150) {
      Append(&bytes, Insert(id, TestKey(2), value));
    } else if (id == kFrames) {
      Append(&bytes, Select(id, TestKey(2)));
    } else {
      Append(&bytes, id % 2 == 0 ? Ping(id) : MatchPrefix(id, TestKey(1)));
    }
  }
  RawConn raw(daemon_->address());
  ASSERT_TRUE(raw.connected());
  ASSERT_TRUE(raw.SendBytes(bytes));
  for (uint64_t id = 1; id <= kFrames; ++id) {
    auto reply = raw.ReadReply();
    ASSERT_TRUE(reply.has_value()) << "no reply " << id << "\n" << daemon_->Log();
    ASSERT_EQ(reply->id, id);
    ASSERT_EQ(reply->code, wire::Code::OK) << reply->message;
    if (id == 150) EXPECT_EQ(reply->count, 1u);  // stored
    if (id != 150 && id != kFrames && id % 2 == 1) EXPECT_EQ(reply->count, 1u);
    if (id == kFrames) EXPECT_EQ(reply->bulk, value);
  }
}

TEST_F(SmallFrames, AFrameSplitByteByByteIsStillHandled) {
  const auto value = RandomBytes(1500, 3);
  std::vector<std::byte> bytes = Insert(7, TestKey(3), value);
  Append(&bytes, MatchPrefix(8, TestKey(3)));
  RawConn raw(daemon_->address());
  ASSERT_TRUE(raw.connected());
  raw.SetNoDelay();
  for (std::byte b : bytes) {
    ASSERT_TRUE(raw.SendBytes(std::span<const std::byte>(&b, 1)));
    std::this_thread::sleep_for(100us);  // pacing: each byte its own segment, not a wait
  }
  auto inserted = raw.ReadReply();
  ASSERT_TRUE(inserted.has_value()) << daemon_->Log();
  EXPECT_EQ(inserted->id, 7u);
  EXPECT_EQ(inserted->code, wire::Code::OK) << inserted->message;
  EXPECT_EQ(inserted->count, 1u);
  auto matched = raw.ReadReply();
  ASSERT_TRUE(matched.has_value());
  EXPECT_EQ(matched->id, 8u);
  EXPECT_EQ(matched->count, 1u);
  std::vector<Key> keys{TestKey(3)};
  auto got = client_->Select(keys);
  ASSERT_OK(got);
  EXPECT_EQ((*got)[0].value, value);
  EXPECT_EQ(Stalled(), 0.0);
}

TEST_F(SmallFrames, AHalfHeaderAfterALateFrameIsCutAtTheStallTimeout) {
  RawConn raw(daemon_->address());
  ASSERT_TRUE(raw.connected());
  raw.SetNoDelay();
  // A frame's first bytes start the stall watch (--stall-timeout 400ms) ...
  std::vector<std::byte> first = Ping(1);
  ASSERT_TRUE(raw.SendBytes(std::span<const std::byte>(first).first(10)));
  std::this_thread::sleep_for(250ms);
  // ... the rest comes in time, together with half the next frame's header,
  // which then stops: the watch's timer fires for the first frame, finds the
  // second under way since later, and waits out the second's own timeout.
  std::vector<std::byte> rest(first.begin() + 10, first.end());
  std::vector<std::byte> second = Ping(2);
  rest.insert(rest.end(), second.begin(), second.begin() + 5);
  ASSERT_TRUE(raw.SendBytes(rest));
  auto reply = raw.ReadReply();
  ASSERT_TRUE(reply.has_value()) << daemon_->Log();
  EXPECT_EQ(reply->id, 1u);
  EXPECT_TRUE(raw.ClosedByPeer(5000));
  EXPECT_GE(Stalled(), 1.0);
  ASSERT_OK(client_->Ping());
}

TEST_F(SmallFrames, AStallAfterAnIdleSpellIsCutInTheHeaderAndInTheControlPart) {
  // Idle between frames for longer than the stall timeout is fine; a frame
  // begun after it must still arrive whole.
  RawConn header(daemon_->address());
  RawConn control(daemon_->address());
  ASSERT_TRUE(header.SendBytes(Ping(1)));
  ASSERT_TRUE(control.SendBytes(Ping(1)));
  ASSERT_TRUE(header.ReadReply().has_value());
  ASSERT_TRUE(control.ReadReply().has_value());
  std::this_thread::sleep_for(600ms);
  ASSERT_TRUE(header.SendBytes(Ping(2)));
  ASSERT_TRUE(header.ReadReply().has_value());  // not cut for being idle
  std::vector<std::byte> next = MatchPrefix(3, TestKey(1));
  ASSERT_TRUE(header.SendBytes(std::span<const std::byte>(next).first(kFrameHeaderSize - 3)));
  ASSERT_TRUE(control.SendBytes(std::span<const std::byte>(next).first(kFrameHeaderSize + 8)));
  EXPECT_TRUE(header.ClosedByPeer(5000));
  EXPECT_TRUE(control.ClosedByPeer(5000));
  EXPECT_GE(Stalled(), 2.0);
}

TEST_F(SmallFrames, ACallOutlastingTheSocketTimeoutLeftByAShortCallIsNotCutShort) {
  // A short io_timeout leaves a short SO_RCVTIMEO on the connection; a
  // drop_select that waits longer must not end at it, only at its own deadline.
  ClientOptions o;
  o.address = daemon_->address();
  o.transport = "tcp";
  o.max_connections = 1;
  o.io_timeout = 200ms;
  auto c = Client::Connect(o);
  ASSERT_OK(c);
  ASSERT_OK((*c)->Ping());
  const auto value = RandomBytes(4096, 4);
  std::thread producer([&] {
    std::this_thread::sleep_for(700ms);  // pacing: the key comes after the short timeout
    EXPECT_OK(client_->Insert(TestKey(4), value));
  });
  std::vector<Key> keys{TestKey(4)};
  auto got = (*c)->DropSelect(keys, 5s);
  producer.join();
  ASSERT_OK(got);
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].value, value);
  ASSERT_OK((*c)->Ping());
}

}  // namespace
}  // namespace kvstore::testing
