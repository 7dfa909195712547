// Helpers shared by the integration tests.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "eventually.h"
#include "kvstore/client.h"
#include "kvstore/key.h"
#include "status_matchers.h"
#include "test_daemon.h"

namespace kvstore::testing {

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
  EXPECT_OK(c);
  return c.ok() ? std::move(c).value() : nullptr;
}

// How many of {k} `c` finds stored (0 or 1; 99 when the call fails).
inline size_t StoredCount(Client& c, const Key& k) {
  auto n = c.MatchPrefix(std::span<const Key>(&k, 1));
  EXPECT_OK(n);
  return n.ok() ? *n : 99;
}

// A client of `d` over one transport ("local", "tcp"), whatever the suite runs with.
inline std::unique_ptr<Client> ConnectWith(const TestDaemon& d, const std::string& transport) {
  ClientOptions o;
  o.address = d.address();
  o.transport = transport;
  auto c = Client::Connect(o);
  EXPECT_OK(c);
  return c.ok() ? std::move(c).value() : nullptr;
}

}  // namespace kvstore::testing
