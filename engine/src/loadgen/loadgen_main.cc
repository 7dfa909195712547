// kvstore-loadgen: checks and benchmarks disaggregated serving against a
// colocated engine, like vLLM's disagg_benchmarks.
//
//   check: sends a fixed prompt set to --colocated and --disaggregated and
//          exits 1 unless every answer matches token for token.
//   bench: replays a workload (Poisson arrivals, or the conversation trace
//          scaled to the tiny model) at each --qps against both setups in
//          the same run, prints TTFT / ITL mean, p50, p99 and their ratios,
//          and plots ITL over QPS (--plot out.png, via gnuplot).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "kvstore/client.h"
#include "kvstore/units.h"
#include "loadgen.h"

using namespace kvstore::engine::loadgen;

namespace {

double Wall(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// kvstored's own counters, for the report.
void PrintStoreStats(const std::string& store) {
  kvstore::ClientOptions co;
  co.address = store;
  co.client_name = "kvstore-loadgen";
  auto c = kvstore::Client::Connect(co);
  if (!c.ok()) {
    std::cout << "store: " << c.status().ToString() << "\n";
    return;
  }
  auto s = (*c)->Stats();
  if (!s.ok()) {
    std::cout << "store: " << s.status().ToString() << "\n";
    return;
  }
  uint64_t entries = 0, bytes = 0;
  for (const auto& t : s->tiers) {
    entries += t.entries;
    bytes += t.bytes;
  }
  std::cout << fmt::format(
      "store {}: {} inserts, {} hits, {} misses, {} ttl-expired, "
      "{} entries ({}) left\n",
      store, s->inserts, s->hits, s->misses, s->ttl_expired, entries, kvstore::FormatSize(bytes));
}

int RunCheck(const std::string& coloc, const std::string& disagg, int block_size) {
  std::vector<Request> set = CheckSet(block_size);
  // Sequential on the colocated engine (the reference), then the
  // disaggregated path twice: one by one, and all at once.
  auto t0 = std::chrono::steady_clock::now();
  std::vector<Outcome> want;
  for (const Request& r : set) want.push_back(RunWorkload(coloc, {r})[0]);
  const double wall_c = Wall(t0);
  Summary sc = Summarize(want, wall_c);
  t0 = std::chrono::steady_clock::now();
  std::vector<Outcome> seq;
  for (const Request& r : set) seq.push_back(RunWorkload(disagg, {r})[0]);
  const double wall_d = Wall(t0);
  Summary sd = Summarize(seq, wall_d);
  std::vector<Outcome> conc = RunWorkload(disagg, set);

  size_t shortest = SIZE_MAX, longest = 0;
  for (const Request& r : set) {
    shortest = std::min(shortest, r.prompt.size());
    longest = std::max(longest, r.prompt.size());
  }
  int mismatches = 0;
  for (size_t i = 0; i < set.size(); ++i) {
    for (const auto* got : {&seq[i], &conc[i]}) {
      bool ok = want[i].status == 200 && got->status == 200 && got->tokens == want[i].tokens &&
                !want[i].tokens.empty();
      if (!ok) {
        mismatches++;
        std::cout << fmt::format(
            "MISMATCH {:<20} prompt {:>4} tokens: colocated {} ({} tokens) "
            "vs disaggregated {} ({} tokens) {}\n",
            set[i].name, set[i].prompt.size(), want[i].status, want[i].tokens.size(), got->status,
            got->tokens.size(), got->error + want[i].error);
      }
    }
  }
  std::cout << fmt::format(
      "check: {} prompts (lengths {}..{} tokens, shared prefixes, sampled), "
      "each sent one by one and all at once: {} of {} disaggregated answers "
      "equal the colocated answer token for token\n",
      set.size(), shortest, longest, 2 * set.size() - mismatches, 2 * set.size());
  std::cout << FormatSummary("colocated", 0, sc) << "\n"
            << FormatSummary("disaggregated", 0, sd) << "\n";
  return mismatches == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "kvstore-loadgen: equivalence check and latency benchmark of disaggregated "
      "(proxy) vs colocated (--role both) serving"};
  std::string store;
  std::string mode = "bench", coloc, disagg, workload = "poisson", plot, trace_path;
  std::vector<double> qps_list = {0.5, 1, 2};
  PoissonOptions po;
  TraceOptions to;
  int block_size = 16;
  app.add_option("--mode", mode, "check | bench")->capture_default_str();
  app.add_option("--colocated", coloc, "URL of a --role both engine")->required();
  app.add_option("--disaggregated", disagg, "URL of a --role proxy")->required();
  app.add_option("--workload", workload, "bench: poisson | trace")->capture_default_str();
  app.add_option("--qps", qps_list, "bench: request rates to run, e.g. 0.5,1,2")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--num-requests", po.num_requests, "bench: requests per rate and setup")
      ->capture_default_str();
  app.add_option("--input-len", po.input_len, "poisson: prompt tokens")->capture_default_str();
  app.add_option("--output-len", po.output_len, "poisson: generated tokens")->capture_default_str();
  app.add_option("--shared-prefix-len", po.shared_prefix_len,
                 "poisson: leading tokens all prompts share")
      ->capture_default_str();
  app.add_option("--trace", trace_path, "trace: conversation_trace.jsonl")->capture_default_str();
  app.add_option("--trace-token-scale", to.token_scale,
                 "trace: input and output lengths are divided by this")
      ->capture_default_str();
  app.add_option("--max-input", to.max_input, "trace: prompt cap after scaling")
      ->capture_default_str();
  app.add_option("--max-output", to.max_output, "trace: output cap after scaling")
      ->capture_default_str();
  app.add_option("--plot", plot, "bench: PNG of p99 ITL over QPS (needs gnuplot)");
  std::vector<std::string> chunked;
  int rounds = 3;
  app.add_option("--chunked", chunked,
                 "bench: LABEL=URL of a colocated engine with --max-prefill-chunk (repeatable), "
                 "run beside the two others")
      ->delimiter(',');
  app.add_option("--rounds", rounds, "bench: interleaved rounds per rate (median, min-max)")
      ->capture_default_str();
  app.add_option("--store", store, "kvstored HOST:PORT: print its counters after the run");
  app.add_option("--block-size", block_size, "check: engine block size")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (mode == "check") {
    int rc = RunCheck(coloc, disagg, block_size);
    if (!store.empty()) PrintStoreStats(store);
    return rc;
  }
  if (mode != "bench") {
    std::cerr << "--mode must be check or bench\n";
    return 2;
  }
  // Setups in the order they run within a round; the baseline (ratios) is last.
  std::vector<std::pair<std::string, std::string>> setups = {{"colocated", coloc}};
  for (const std::string& c : chunked) {
    auto eq = c.find('=');
    if (eq == std::string::npos) {
      std::cerr << "--chunked takes LABEL=URL, got " << c << "\n";
      return 2;
    }
    setups.emplace_back(c.substr(0, eq), c.substr(eq + 1));
  }
  setups.emplace_back("disaggregated", disagg);
  std::vector<PlotPoint> points;
  int window = 0;
  for (double qps : qps_list) {
    PlotPoint p{qps, {}};
    p.rounds.resize(setups.size());
    for (int round = 0; round < rounds; ++round, ++window) {
      std::vector<Request> reqs;
      if (workload == "trace") {
        to.path = trace_path;
        to.qps = qps;
        to.num_requests = po.num_requests;
        // The next window of the trace per round, so no engine has it cached yet
        // (each window still shares the trace's system prompt, hash id 0).
        to.skip = window * po.num_requests;
        auto t = Trace(to);
        if (!t.ok()) {
          std::cerr << t.status().ToString() << "\n";
          return 2;
        }
        reqs = std::move(t).value();
      } else {
        po.qps = qps;
        po.seed = 1 + window;  // fresh prompts per round: no engine has them cached
        reqs = Poisson(po);
      }
      // Same requests, same rate, every setup one after the other; the order
      // rotates per round so no setup always runs first.
      for (size_t k = 0; k < setups.size(); ++k) {
        const size_t i = (k + round) % setups.size();
        auto t0 = std::chrono::steady_clock::now();
        std::vector<Outcome> o = RunWorkload(setups[i].second, reqs);
        p.rounds[i].push_back(Summarize(o, Wall(t0)));
        std::cout << FormatSummary(setups[i].first + " r" + std::to_string(round + 1), qps,
                                   p.rounds[i].back())
                  << std::endl;
      }
    }
    std::cout << FormatRoundsTable(setups, p) << std::flush;
    points.push_back(std::move(p));
  }
  if (!plot.empty()) {
    auto s = PlotItl(setups, points, plot,
                     "kvstore: p99 inter-token latency (" + workload + " workload, median of " +
                         std::to_string(rounds) + " rounds)");
    if (!s.ok()) {
      std::cerr << s.ToString() << "\n";
      return 1;
    }
    std::cout << "plot: " << plot << "\n";
  }
  return 0;
}
