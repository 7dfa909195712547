#include <algorithm>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "kvstore/engine/http_client.h"
#include "loadgen.h"

namespace kvstore::engine::loadgen {

namespace {

// Deterministic byte tokens; salt varies the content.
std::vector<int32_t> Tokens(int n, uint64_t salt) {
  std::vector<int32_t> t;
  uint64_t x = salt * 0x9E3779B97F4A7C15ull + 12345;
  for (int i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    t.push_back(static_cast<int32_t>(x % 256));
  }
  return t;
}

void Append(std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
}

}  // namespace

std::vector<Request> CheckSet(int bs) {
  std::vector<Request> out;
  int salt = 0;
  for (int n : {1, 7, bs - 1, bs, bs + 1, 2 * bs - 1, 2 * bs, 2 * bs + 1, 3 * bs + 5, 5 * bs,
                8 * bs - 1, 8 * bs, 8 * bs + 3, 20 * bs + 7}) {
    out.push_back({"len" + std::to_string(n), 0, Tokens(n, ++salt), 12 + n % 7});
  }
  const std::vector<int32_t> system = Tokens(3 * bs + 4, 1000);
  for (int q : {0, 5, bs - 4, bs, 2 * bs + 9, 4 * bs}) {
    std::vector<int32_t> p = system;
    Append(p, Tokens(q, 2000 + q));
    out.push_back({"shared-prefix+" + std::to_string(q), 0, p, 16});
  }
  Request s{"sampled", 0, Tokens(6 * bs + 3, 3000), 16, 0.8f, 42};
  out.push_back(s);
  return out;
}

std::vector<Request> Poisson(const PoissonOptions& o) {
  std::mt19937_64 rng(o.seed);
  std::exponential_distribution<double> gap(o.qps);
  const std::vector<int32_t> prefix = Tokens(o.shared_prefix_len, 77);
  std::vector<Request> out;
  double t = 0;
  for (int i = 0; i < o.num_requests; ++i) {
    std::vector<int32_t> p = prefix;
    Append(p, Tokens(std::max(1, o.input_len - o.shared_prefix_len), 100000 + i + o.seed * 7919));
    out.push_back({"poisson" + std::to_string(i), t, p, o.output_len});
    t += gap(rng);
  }
  return out;
}

Result<std::vector<Request>> Trace(const TraceOptions& o) {
  std::ifstream in(o.path);
  if (!in) return Status::NotFound("cannot open trace " + o.path);
  const int hash_block = std::max(1, 512 / o.token_scale);
  std::vector<Request> out;
  std::vector<double> stamps;
  std::string line;
  for (int i = 0; i < o.skip && std::getline(in, line); ++i) {
  }
  while (static_cast<int>(out.size()) < o.num_requests && std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) continue;
    Request r;
    r.name = "trace" + std::to_string(out.size());
    int input = std::clamp(j.value("input_length", 512) / o.token_scale, 1, o.max_input);
    r.max_tokens = std::clamp(j.value("output_length", 64) / o.token_scale, 1, o.max_output);
    for (const auto& h : j.value("hash_ids", std::vector<uint64_t>{})) {
      if (static_cast<int>(r.prompt.size()) >= input) break;
      Append(r.prompt, Tokens(hash_block, h + 1));
    }
    r.prompt.resize(input, 32);
    stamps.push_back(j.value("timestamp", 0.0) / 1000.0);
    out.push_back(std::move(r));
  }
  if (out.empty()) return Status::InvalidArgument("trace " + o.path + " has no requests");
  // Keep the trace's burstiness, at the asked mean rate.
  double span = stamps.back() - stamps.front();
  double scale = span > 0 ? (out.size() / o.qps) / span : 0;
  for (size_t i = 0; i < out.size(); ++i)
    out[i].at_seconds = span > 0 ? (stamps[i] - stamps.front()) * scale : i / o.qps;
  return out;
}

std::vector<Outcome> RunWorkload(const std::string& url, const std::vector<Request>& requests) {
  std::vector<Outcome> out(requests.size());
  std::vector<std::thread> threads;
  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < requests.size(); ++i) {
    std::this_thread::sleep_until(start +
                                  std::chrono::duration_cast<std::chrono::nanoseconds>(
                                      std::chrono::duration<double>(requests[i].at_seconds)));
    threads.emplace_back([&, i] {
      const Request& r = requests[i];
      nlohmann::json body = {{"prompt", r.prompt},           {"max_tokens", r.max_tokens},
                             {"temperature", r.temperature}, {"seed", r.seed},
                             {"ignore_eos", true},           {"stream", true}};
      Outcome& o = out[i];
      o.name = r.name;
      auto s = StreamCompletion(url, body.dump());
      if (!s.ok()) {
        o.error = s.status().ToString();
        return;
      }
      o.status = s->status;
      o.error = s->error;
      o.tokens = s->tokens;
      o.ttft = s->ttft_seconds;
      o.e2e = s->e2e_seconds;
      o.itl = s->itl_seconds;
    });
  }
  for (auto& t : threads) t.join();
  return out;
}

}  // namespace kvstore::engine::loadgen
