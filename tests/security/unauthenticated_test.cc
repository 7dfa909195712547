// Unauthenticated peers get almost nothing: a hello deadline, a budget of
// their own that can never crowd out clients with a token, no value bytes read
// before (or after a refused) hello, rate-limited logging of what they do
// wrong, and a /metrics endpoint no slow or half-open client can stall.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

#include "kvstore/units.h"
#include "security_util.h"

namespace kvstore::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kToken = "the-one-token-0123456789";

std::string WriteTokens(const TempDir& dir) {
  std::string path = dir.path() + "/tokens";
  std::ofstream(path) << "engine default engine " << kToken << "\n";
  return path;
}

// An insert carrying its value in the frame, as a TCP client sends it.
void SendInsertWithValue(RawConn& raw, uint64_t id, const Key& key,
                         std::span<const std::byte> value) {
  capnp::MallocMessageBuilder m;
  auto r = m.initRoot<wire::Request>();
  r.setId(id);
  auto ins = r.initInsert();
  ins.setKey(KeyToWire(key));
  ins.initMeta().setSize(value.size());
  (void)raw.SendFrame(m, value);  // may stop early: the daemon closes without reading it
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(Unauthenticated, TwoThousandIdleConnectionsDoNotLockOutAClientWithAToken) {
  rlimit nofile{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &nofile), 0);
  if (nofile.rlim_max < 2200)
    GTEST_SKIP() << "needs 2200 descriptors; hard limit " << nofile.rlim_max;
  nofile.rlim_cur = nofile.rlim_max;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &nofile), 0);
  TempDir dir("kvstore-unauth");
  auto daemon = StartDaemon({"--tokens-file", WriteTokens(dir)});
  ASSERT_NE(daemon, nullptr);
  std::vector<std::unique_ptr<RawConn>> idle;
  for (int i = 0; i < 2000; ++i) {
    idle.push_back(std::make_unique<RawConn>(daemon->address()));
    ASSERT_TRUE(idle.back()->connected()) << "connection " << i;
  }
  // All of them connected and silent; a client with the token is still served.
  ClientOptions o;
  o.address = daemon->address();
  o.token = kToken;
  o.transport = "tcp";
  o.connect_timeout = 5s;
  o.io_timeout = 5s;
  auto c = Client::Connect(o);
  ASSERT_OK(c);
  ASSERT_OK((*c)->Ping());
  Key k = TestKey(1);
  auto value = RandomBytes(100000, 1);
  ASSERT_OK((*c)->Insert(k, value));
  auto got = (*c)->Select(std::span(&k, 1));
  ASSERT_OK(got);
  EXPECT_EQ((*got)[0].value, value);
  // The silent ones were pushed out to make room (the budget is 128 by default).
  EXPECT_GE(daemon->Metric("kvstore_protocol_errors_total", {{"reason", "unauthenticated_evicted"}})
                .value_or(0),
            1000.0);
}

TEST(Unauthenticated, SilentConnectionIsClosedAtTheHelloDeadline) {
  TempDir dir("kvstore-unauth");
  auto daemon = StartDaemon({"--tokens-file", WriteTokens(dir), "--hello-timeout", "300ms"});
  ASSERT_NE(daemon, nullptr);
  RawConn raw(daemon->address());
  ASSERT_TRUE(raw.connected());
  EXPECT_TRUE(raw.ClosedByPeer(20000));
  EXPECT_GE(
      daemon->Metric("kvstore_protocol_errors_total", {{"reason", "hello_timeout"}}).value_or(0),
      1.0);
}

TEST(Unauthenticated, ValueBytesBeforeOrAfterARefusedHelloAreNeverRead) {
  TempDir dir("kvstore-unauth");
  auto daemon = StartDaemon({"--tokens-file", WriteTokens(dir)});
  ASSERT_NE(daemon, nullptr);
  auto bulk = RandomBytes(1 << 20, 2);
  {
    // Wrong token, then an insert with its value right behind it.
    RawConn raw(daemon->address());
    auto reply = SendHello(raw, "wrong-token-0123456789", false);
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->code, wire::Code::PERMISSION_DENIED);
    SendInsertWithValue(raw, 2, TestKey(2), bulk);  // may fail half-way: the daemon closed
    EXPECT_TRUE(raw.ClosedByPeer());
  }
  {
    // An insert with a value instead of a hello: closed before the value is read.
    RawConn raw(daemon->address());
    SendInsertWithValue(raw, 1, TestKey(3), bulk);
    EXPECT_TRUE(raw.ClosedByPeer());
  }
  EXPECT_EQ(daemon->Metric("kvstore_received_bytes_total").value_or(-1), 0.0);
  EXPECT_GE(daemon->Metric("kvstore_protocol_errors_total", {{"reason", "unauthenticated_bulk"}})
                .value_or(0),
            1.0);
}

TEST(Unauthenticated, ProtocolErrorsAreCountedExactlyAndLoggedSparingly) {
  auto daemon = StartDaemon();
  ASSERT_NE(daemon, nullptr);
  RawConn raw(daemon->address());
  ASSERT_TRUE(raw.connected());
  constexpr int kFrames = 300;
  FrameHeader h;
  h.control_len = 32;
  std::byte head[kFrameHeaderSize];
  h.Encode(head);
  std::vector<std::byte> frame(head, head + sizeof(head));
  frame.resize(frame.size() + 32, std::byte{0xff});  // not a Cap'n Proto message
  for (int i = 0; i < kFrames; ++i) {
    ASSERT_TRUE(raw.SendBytes(frame));
    auto reply = raw.ReadReply();
    ASSERT_TRUE(reply.has_value());
    ASSERT_EQ(reply->code, wire::Code::INVALID_ARGUMENT);
  }
  EXPECT_EQ(daemon->Metric("kvstore_protocol_errors_total", {{"reason", "malformed_message"}})
                .value_or(0),
            kFrames);
  // Each reply counts under its real kind, not as some other request's.
  EXPECT_EQ(
      daemon
          ->Metric("kvstore_requests_total", {{"op", "malformed"}, {"result", "invalid_argument"}})
          .value_or(0),
      kFrames);
  EXPECT_FALSE(
      daemon->Metric("kvstore_requests_total", {{"op", "ping"}, {"result", "invalid_argument"}})
          .has_value());
  size_t lines = Count(daemon->Log(), "malformed request");
  EXPECT_GE(lines, 1u);
  EXPECT_LT(lines, 100u) << "every malformed frame was logged";
}

TEST(MetricsEndpoint, HalfOpenRequestsDoNotStallAScrape) {
  auto daemon = StartDaemon();
  ASSERT_NE(daemon, nullptr);
  std::vector<std::unique_ptr<RawConn>> stuck;
  for (int i = 0; i < 200; ++i) {
    // Half a request line, or nothing at all, and then silence.
    stuck.push_back(std::make_unique<RawConn>(daemon->metrics_address()));
    ASSERT_TRUE(stuck.back()->connected());
    if (i % 2 == 0) ASSERT_TRUE(stuck.back()->SendBytes(std::string("GET /metr")));
  }
  std::string text = daemon->ScrapeMetrics();
  EXPECT_NE(text.find("kvstore_connections_total"), std::string::npos) << text.substr(0, 200);
  EXPECT_TRUE(daemon->Metric("kvstore_waiters").has_value());
}

}  // namespace
}  // namespace kvstore::testing
