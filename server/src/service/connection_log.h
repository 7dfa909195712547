// Rate-limited logging of what peers do wrong: at most a few lines per second
// per kind of event, then one line saying how many were left out. A peer that
// sends garbage as fast as it can costs the log a handful of lines, and the
// counts stay exact in kvstore_protocol_errors_total.
//
// Thread-safety: thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include <spdlog/spdlog.h>

namespace kvstore::server {

class RateLimitedLog {
 public:
  explicit RateLimitedLog(int lines_per_second = 5) : per_second_(lines_per_second) {}

  // Logs at warn unless `kind` already logged its share this second.
  template <typename... Args>
  void Warn(const std::string& kind, spdlog::format_string_t<Args...> fmt, Args&&... args) {
    uint64_t suppressed = 0;
    if (!Admit(kind, &suppressed)) return;
    if (suppressed > 0) {
      spdlog::warn("{} similar '{}' messages were left out in the last second", suppressed, kind);
    }
    spdlog::warn(fmt, std::forward<Args>(args)...);
  }

 private:
  bool Admit(const std::string& kind, uint64_t* suppressed) {
    auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mu_);
    State& s = state_[kind];
    if (now - s.window >= std::chrono::seconds(1)) {
      *suppressed = s.dropped;
      s.window = now;
      s.logged = 0;
      s.dropped = 0;
    }
    if (s.logged >= per_second_) {
      ++s.dropped;
      return false;
    }
    ++s.logged;
    return true;
  }
  struct State {
    std::chrono::steady_clock::time_point window{};
    int logged = 0;
    uint64_t dropped = 0;
  };
  const int per_second_;
  std::mutex mu_;
  std::unordered_map<std::string, State> state_;  // GUARDED_BY(mu_): a few kinds
};

}  // namespace kvstore::server
