// Eventually: the one way tests wait for something another thread or process
// does (a waiter registering, a connection closing, memory being freed). It
// polls instead of sleeping a fixed time, so a test is as fast as the system
// allows and fails only when the condition never comes.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace kvstore::testing {

// Polls `pred` every `every` until it returns true or `timeout` passes;
// returns its last value. Use as ASSERT_TRUE(Eventually([&] { ... })).
inline bool Eventually(const std::function<bool()>& pred,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10),
                       std::chrono::milliseconds every = std::chrono::milliseconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(every);
  }
  return pred();
}

}  // namespace kvstore::testing
