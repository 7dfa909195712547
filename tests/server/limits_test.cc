// What one client can make kvstored hold is bounded in time and in total:
// replies nobody reads, inserts that trickle in, waiters, keys per request,
// memory for pending calls; and SIGTERM does not wait on idle clients.
// Each refusal names its cap and the flag that raises it, and is counted.
#include <csignal>
#include <future>

#include <capnp/message.h>

#include "kvstore/wire_convert.h"

#include "raw_conn.h"
#include "test_util.h"

namespace kvstore::testing {
namespace {

using namespace std::chrono_literals;

double HostUsed(const TestDaemon& d) {
  return d.Metric("kvstore_used_bytes", {{"tier", "host"}}).value_or(-1);
}

double HostStored(const TestDaemon& d) {
  return d.Metric("kvstore_stored_bytes", {{"tier", "host"}}).value_or(-1);
}

// A select (or drop_select) frame as a client sends it.
std::unique_ptr<capnp::MallocMessageBuilder> SelectMsg(uint64_t id, const std::vector<Key>& keys,
                                                       bool drop, uint32_t timeout_ms = 0) {
  auto msg = std::make_unique<capnp::MallocMessageBuilder>();
  auto r = msg->initRoot<wire::Request>();
  r.setId(id);
  auto sel = drop ? r.initDropSelect() : r.initSelect();
  auto list = sel.initKeys(static_cast<unsigned>(keys.size()));
  for (size_t i = 0; i < keys.size(); ++i) list.set(static_cast<unsigned>(i), KeyToWire(keys[i]));
  sel.setTimeoutMs(timeout_ms);
  return msg;
}

class Limits : public ::testing::Test {
 protected:
  // Starts kvstored with `args` and connects a client to it.
  void Start(std::vector<std::string> args) {
    daemon_ = StartDaemon(std::move(args));
    ASSERT_NE(daemon_, nullptr);
    client_ = ConnectTo(*daemon_);
    ASSERT_NE(client_, nullptr);
  }
  std::unique_ptr<TestDaemon> daemon_;
  std::unique_ptr<Client> client_;
};

TEST_F(Limits, RepliesNobodyReadsAreCutAtTheStallTimeoutAndFreeWhatTheyPinned) {
  ASSERT_NO_FATAL_FAILURE(
      Start({"--stall-timeout", "500ms", "--memory", "64MiB", "--max-value", "16MiB"}));
  auto& d = daemon_;
  auto& c = client_;
  const Key big = TestKey(1);
  ASSERT_OK(c->Insert(big, RandomBytes(8 << 20, 1)));
  // Slow readers: several connections each pipeline selects of the 8 MiB value
  // and never read a byte of the replies.
  std::vector<std::unique_ptr<RawConn>> readers;
  for (int i = 0; i < 4; ++i) {
    readers.push_back(std::make_unique<RawConn>(d->address()));
    ASSERT_TRUE(readers.back()->connected());
    for (uint64_t id = 1; id <= 10; ++id) {
      ASSERT_TRUE(readers.back()->SendFrame(*SelectMsg(id, {big}, false), {}));
    }
  }
  // The entry goes; its slot stays pinned only as long as replies hold it.
  std::vector<Key> keys{big};
  ASSERT_TRUE(Eventually([&] { return d->Metric("kvstore_connected_clients") == 5.0; }));
  // Every select answered (its reply queued, the value pinned) before the entry
  // goes: a select handled after the remove would answer a small NotFound that
  // fits the socket buffer, and that connection would rightly stay open.
  ASSERT_TRUE(Eventually([&] {
    return d->Metric("kvstore_requests_total", {{"op", "select"}, {"result", "ok"}}).value_or(0) >=
           40.0;
  })) << "selects answered: "
      << d->Metric("kvstore_requests_total", {{"op", "select"}, {"result", "ok"}}).value_or(0);
  ASSERT_OK(c->Remove(keys));
  ASSERT_TRUE(Eventually([&] { return HostStored(*d) == 0 && HostUsed(*d) == 0; }, 20s))
      << "host used " << HostUsed(*d) << " for " << HostStored(*d) << " stored";
  ASSERT_TRUE(Eventually([&] { return d->Metric("kvstore_connected_clients") == 1.0; }));
  EXPECT_GE(d->Metric("kvstore_protocol_errors_total", {{"reason", "write_stalled"}}).value_or(0),
            1.0);
  EXPECT_NE(d->Log().find("read none of its reply"), std::string::npos) << d->Log();
  // New inserts of the same size fit again.
  for (uint32_t i = 2; i < 8; ++i) ASSERT_OK(c->Insert(TestKey(i), RandomBytes(8 << 20, i)));
}

TEST_F(Limits, AnInsertTricklingBelowTheMinimumRateIsCutAndItsReservationFreed) {
  ASSERT_NO_FATAL_FAILURE(Start({"--stall-timeout", "3s", "--min-insert-rate", "4MiB", "--memory",
                                 "12MiB", "--max-value", "8MiB"}));
  auto& d = daemon_;
  auto& c = client_;
  // Declares 8 MiB, then sends 300 KiB (more than the daemon's read low-water
  // mark) about every 300 ms: well inside the stall timeout each time, but at a
  // quarter of the minimum rate. Its deadline is 3 s + 2 s.
  RawConn raw(d->address());
  ASSERT_TRUE(raw.connected());
  const uint64_t size = 8 << 20;
  auto msg = std::make_unique<capnp::MallocMessageBuilder>();
  auto r = msg->initRoot<wire::Request>();
  r.setId(7);
  auto ins = r.initInsert();
  ins.setKey(KeyToWire(TestKey(1)));
  ins.initMeta().setSize(size);
  OutFrame f = EncodeFrame(*msg, size);
  ASSERT_TRUE(raw.SendBytes(f.header));
  ASSERT_TRUE(raw.SendBytes(f.control_bytes()));
  // While it holds its reservation, another client's 6 MiB does not fit.
  ASSERT_TRUE(Eventually([&] { return HostUsed(*d) >= static_cast<double>(size); }));
  auto refused = c->Insert(TestKey(2), RandomBytes(6 << 20, 2));
  ASSERT_FALSE(refused.ok());
  std::optional<RawConn::Reply> reply;
  bool closed = false;
  const std::vector<std::byte> piece = RandomBytes(300 << 10, 3);
  for (uint64_t sent = 0; sent + piece.size() < size && !closed; sent += piece.size()) {
    if (!raw.SendBytes(piece)) {
      closed = true;
      break;
    }
    reply = raw.ReadReply(300);  // paces the trickle; the cut's reply ends it
    closed = reply.has_value();
  }
  ASSERT_TRUE(closed) << "the whole value trickled in without the connection being cut";
  if (reply) {
    EXPECT_EQ(reply->code, wire::Code::TIMEOUT);
    EXPECT_NE(reply->message.find("--min-insert-rate"), std::string::npos) << reply->message;
  }
  EXPECT_TRUE(raw.ClosedByPeer());
  ASSERT_TRUE(Eventually([&] { return HostUsed(*d) == 0; })) << HostUsed(*d);
  EXPECT_GE(d->Metric("kvstore_protocol_errors_total", {{"reason", "insert_too_slow"}}).value_or(0),
            1.0);
  EXPECT_NE(d->Log().find("--min-insert-rate"), std::string::npos) << d->Log();
  ASSERT_OK(c->Insert(TestKey(2), RandomBytes(6 << 20, 2)));
}

TEST_F(Limits, WaitersAcrossConnectionsAreCapped) {
  ASSERT_NO_FATAL_FAILURE(Start({"--max-waiters", "3"}));
  auto& d = daemon_;
  auto& c = client_;
  // Three drop_selects wait, on three connections.
  std::vector<std::unique_ptr<RawConn>> waiting;
  for (uint32_t i = 0; i < 3; ++i) {
    waiting.push_back(std::make_unique<RawConn>(d->address()));
    ASSERT_TRUE(waiting.back()->SendFrame(*SelectMsg(1, {TestKey(100 + i)}, true, 60000), {}));
  }
  ASSERT_TRUE(Eventually([&] { return d->Metric("kvstore_waiters") == 3.0; }));
  std::vector<Key> keys{TestKey(1)};
  auto got = c->DropSelect(keys, 10s);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(got.status().message().find("--max-waiters"), std::string::npos)
      << got.status().message();
  EXPECT_EQ(d->Metric("kvstore_limit_refusals_total", {{"limit", "waiters"}}), 1.0);
  // One waiter served: there is room again.
  waiting.pop_back();
  ASSERT_TRUE(Eventually([&] { return d->Metric("kvstore_waiters") == 2.0; }));
  ASSERT_OK(c->Insert(TestKey(1), RandomBytes(100, 1)));
  ASSERT_OK(c->DropSelect(keys, 10s));
}

TEST_F(Limits, KeysPerRequestAreCappedForEveryCallThatNamesKeys) {
  ASSERT_NO_FATAL_FAILURE(Start({"--max-keys-per-request", "8"}));
  auto& d = daemon_;
  auto& c = client_;
  std::vector<Key> nine, eight;
  for (uint32_t i = 0; i < 9; ++i) nine.push_back(TestKey(i));
  eight.assign(nine.begin(), nine.begin() + 8);
  for (const Key& k : eight) ASSERT_OK(c->Insert(k, RandomBytes(64, 1)));
  auto expect_refused = [](const Status& s) {
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("--max-keys-per-request"), std::string::npos) << s.message();
  };
  expect_refused(c->Select(nine).status());
  expect_refused(c->DropSelect(nine, 1s).status());
  expect_refused(c->MatchPrefix(nine).status());
  expect_refused(c->Retain(nine).status());
  expect_refused(c->Remove(nine).status());
  EXPECT_EQ(d->Metric("kvstore_limit_refusals_total", {{"limit", "keys_per_request"}}), 5.0);
  ASSERT_OK(c->Select(eight));
  auto n = c->MatchPrefix(eight);
  ASSERT_OK(n);
  EXPECT_EQ(*n, 8u);
}

TEST_F(Limits, MemoryHeldForPendingCallsIsCapped) {
  ASSERT_NO_FATAL_FAILURE(Start({"--max-pending-bytes", "16MiB", "--memory", "64MiB", "--max-value",
                                 "16MiB", "--stall-timeout", "60s"}));
  auto& d = daemon_;
  auto& c = client_;
  std::vector<Key> keys{TestKey(1)};
  ASSERT_OK(c->Insert(keys[0], RandomBytes(4 << 20, 1)));
  // A reader that does not read: its queued replies hold the value's bytes.
  RawConn slow(d->address());
  for (uint64_t id = 1; id <= 8; ++id) ASSERT_TRUE(slow.SendFrame(*SelectMsg(id, keys, false), {}));
  ASSERT_TRUE(Eventually([&] {
    return d->Metric("kvstore_limit_refusals_total", {{"limit", "pending_bytes"}}).value_or(0) >=
           1.0;
  }));
  auto got = c->Select(keys);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(got.status().message().find("--max-pending-bytes"), std::string::npos)
      << got.status().message();
  // The keys of a waiting drop_select count too: 1M keys would hold ~48 MiB.
  // (Refused before they are waited on; smaller calls still go through.)
  std::vector<Key> many;
  for (uint32_t i = 0; i < 60000; ++i) many.push_back(TestKey(1000 + i));
  auto waited = c->DropSelect(many, 1s);
  ASSERT_FALSE(waited.ok());
  EXPECT_EQ(waited.status().code(), StatusCode::kResourceExhausted);
}

TEST_F(Limits, SigtermClosesIdleClientsAtOnceAndTheDataDirIsFreeRightAfter) {
  TempDir dir;
  // A grace far longer than the test may wait: only requests in flight may use it.
  const std::vector<std::string> args{"--memory",         "64MiB", "--spill", "64MiB",
                                      "--shutdown-grace", "10m"};
  auto d = StartDaemon(args, dir.path());
  ASSERT_NE(d, nullptr);
  std::vector<std::unique_ptr<Client>> idle, waiting;
  for (int i = 0; i < 6; ++i) {
    idle.push_back(ConnectTo(*d, 2));
    ASSERT_NE(idle.back(), nullptr);
    ASSERT_OK(idle.back()->Ping());
  }
  ASSERT_OK(idle[0]->Insert(TestKey(1), RandomBytes(1000, 1)));
  // And some whose drop_selects wait: they are told the daemon is going away.
  std::vector<std::future<Result<std::vector<Entry>>>> waits;
  for (uint32_t i = 0; i < 3; ++i) {
    waiting.push_back(ConnectTo(*d, 1));
    ASSERT_NE(waiting.back(), nullptr);
    waits.push_back(std::async(std::launch::async, [c = waiting.back().get(), i] {
      std::vector<Key> keys{TestKey(100 + i)};
      return c->DropSelect(keys, 10min);
    }));
  }
  ASSERT_TRUE(Eventually([&] { return d->Metric("kvstore_waiters") == 3.0; }));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(d->StopWith(SIGTERM), 0) << d->Log();  // SIGKILL (137) if it outlives the poll
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ measure  ] SIGTERM with %zu idle clients and %zu waiting: exited after %.0f ms\n",
              idle.size(), waiting.size(), ms);
  for (auto& w : waits) {
    auto got = w.get();
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().code(), StatusCode::kUnavailable) << got.status().ToString();
  }
  EXPECT_NE(d->Log().find("kvstored stopped"), std::string::npos) << d->Log();
  auto second = StartDaemon(args, dir.path());
  ASSERT_NE(second, nullptr);
  auto c = ConnectTo(*second);
  ASSERT_NE(c, nullptr);
  std::vector<Key> keys{TestKey(1)};
  ASSERT_OK(c->Select(keys));  // flushed to spill at shutdown, found again
}

}  // namespace
}  // namespace kvstore::testing
