// RequestStream: hands the results of one completion from the thread that
// computes them (the model worker, a KV loader) to the HTTP coroutine that
// answers the request.
//
// Thread-safety: Push and Cancel from any thread; Next only from the
// coroutine running on `executor` (a strand), which must be the only reader.
#pragma once

#include <utility>  // before Asio: Boost 1.74 under C++20 needs std::exchange

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "kvstore/engine/completion_api.h"

namespace kvstore::engine {

struct StreamEvent {
  enum class Kind : uint8_t { kToken, kDone, kError };
  Kind kind = Kind::kToken;
  ChoiceDelta delta;        // kToken: one token (or a choice's end) of one choice
  CompletionResult result;  // kDone: one prompt's choices
  int http_status = 500;    // kError
  std::string error_type;   // kError, e.g. "kv_miss", "invalid_request_error"
  std::string message;      // kError
};

class RequestStream : public std::enable_shared_from_this<RequestStream> {
 public:
  explicit RequestStream(boost::asio::any_io_executor executor);

  void Push(StreamEvent event);
  // Waits for the next event.
  boost::asio::awaitable<StreamEvent> Next();
  // The HTTP client went away: producers should stop working on it.
  void Cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

  // When the request arrived; latency metrics count from here.
  std::chrono::steady_clock::time_point arrival() const { return arrival_; }

 private:
  boost::asio::any_io_executor executor_;
  boost::asio::steady_timer wakeup_;  // touched on executor_ only
  std::mutex mu_;
  std::deque<StreamEvent> events_;  // guarded by mu_
  std::atomic<bool> cancelled_{false};
  std::chrono::steady_clock::time_point arrival_ = std::chrono::steady_clock::now();
};

}  // namespace kvstore::engine
