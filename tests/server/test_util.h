// Helpers shared by the integration tests.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <thread>
#include <vector>

#include "kvstore/client.h"
#include "kvstore/key.h"
#include "test_daemon.h"

namespace kvstore::testing {

inline const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

#define ASSERT_OK(expr)                                                                   \
  do {                                                                                    \
    const auto& s_ = (expr);                                                              \
    ASSERT_TRUE(s_.ok()) << #expr << ": " << ::kvstore::testing::StatusOf(s_).ToString(); \
  } while (0)

inline std::vector<std::byte> RandomBytes(size_t n, uint64_t seed) {
  std::vector<std::byte> v(n);
  std::mt19937_64 rng(seed);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x = rng();
    std::memcpy(v.data() + i, &x, 8);
  }
  for (; i < n; ++i) v[i] = static_cast<std::byte>(rng());
  return v;
}

inline Key TestKey(uint32_t i, const std::string& ns = "test") {
  std::vector<uint32_t> tokens = {i, i + 1, i + 2, i + 3};
  return ChainKey(NamespaceSeed(ns), tokens, 4);
}

inline std::unique_ptr<TestDaemon> StartDaemon(std::vector<std::string> args = {},
                                               std::string data_dir = {}) {
  DaemonOptions o;
  o.args = std::move(args);
  o.data_dir = std::move(data_dir);
  std::string error;
  auto d = TestDaemon::Start(o, &error);
  EXPECT_NE(d, nullptr) << error;
  return d;
}

// ClientOptions::transport for the suites; CTest runs them once as they are
// ("auto": local on this host) and once more with KVSTORE_TEST_TRANSPORT=tcp.
inline std::string TestTransport() {
  const char* t = std::getenv("KVSTORE_TEST_TRANSPORT");
  return t != nullptr && *t != '\0' ? t : "auto";
}

inline std::unique_ptr<Client> ConnectTo(const TestDaemon& d, size_t max_connections = 8) {
  ClientOptions o;
  o.address = d.address();
  o.max_connections = max_connections;
  o.transport = TestTransport();
  auto c = Client::Connect(o);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(c).value() : nullptr;
}

// Polls `pred` until true or `timeout`; returns the last value.
inline bool Eventually(const std::function<bool()>& pred,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

}  // namespace kvstore::testing
