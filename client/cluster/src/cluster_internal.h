// Helpers shared by the files of ClusterClient; private to the library.
#pragma once

#include <future>
#include <string>
#include <vector>

#include "kvstore/cluster/membership.h"
#include "kvstore/status.h"

namespace kvstore::cluster::detail {

// Runs fn(i) for i in [0, n): the first on this thread, the rest in parallel.
template <typename Fn>
void ParallelFor(size_t n, Fn&& fn) {
  if (n == 0) return;
  std::vector<std::future<void>> rest;
  rest.reserve(n - 1);
  for (size_t i = 1; i < n; ++i) rest.push_back(std::async(std::launch::async, fn, i));
  fn(size_t{0});
  for (auto& f : rest) f.get();
}

// A node that cannot be reached: its keys read as absent.
inline bool Unreachable(const Status& s) { return s.code() == StatusCode::kUnavailable; }

inline std::string JoinEndpoints(const ClusterUrl& url) {
  std::string out;
  for (const auto& e : url.endpoints) out += (out.empty() ? "" : ",") + e;
  return out;
}

}  // namespace kvstore::cluster::detail
