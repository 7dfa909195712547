// kvstore-loadgen internals: workloads (the check set, Poisson arrivals, the
// Mooncake conversation trace scaled to the tiny model), the runner that
// replays one against an endpoint, and the report (percentiles, ratios,
// gnuplot PNG).
//
// Thread-safety: RunWorkload runs each request on its own thread and
// collects results under a mutex; everything else is single-threaded.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "kvstore/status.h"

namespace kvstore::engine::loadgen {

struct Request {
  std::string name;
  double at_seconds = 0;        // arrival, from the start of the run
  std::vector<int32_t> prompt;  // token ids
  int max_tokens = 16;
  float temperature = 0;
  uint64_t seed = 0;
};

// Prompts for the equivalence check: lengths below, at and above block
// multiples, shared prefixes, sampled ones; all arrive at 0.
std::vector<Request> CheckSet(int block_size);

struct PoissonOptions {
  double qps = 1;
  int num_requests = 40;
  int input_len = 512;        // tokens per prompt
  int shared_prefix_len = 0;  // leading tokens every prompt shares
  int output_len = 32;
  uint64_t seed = 1;
};
std::vector<Request> Poisson(const PoissonOptions& o);

struct TraceOptions {
  std::string path;       // conversation_trace.jsonl
  double qps = 1;         // the trace's timestamps are rescaled to this mean rate
  int num_requests = 40;  // N lines after the first `skip`
  int skip = 0;
  int token_scale = 16;  // input and output lengths are divided by this
  int max_input = 1024;  // cap after scaling
  int max_output = 64;
};
// The trace's 512-token hash blocks become 512/token_scale-token blocks whose
// tokens derive from the hash id, so equal ids still mean equal prefixes.
Result<std::vector<Request>> Trace(const TraceOptions& o);

struct Outcome {
  std::string name;
  int status = 0;
  std::string error;
  std::vector<int32_t> tokens;
  double ttft = 0, e2e = 0;
  std::vector<double> itl;
};

// Sends every request at its arrival time (each on its own thread) to
// url/v1/completions with stream=true, and waits for all.
std::vector<Outcome> RunWorkload(const std::string& url, const std::vector<Request>& requests);

struct Summary {
  int ok = 0, failed = 0;
  double ttft_mean = 0, ttft_p50 = 0, ttft_p99 = 0;
  double itl_mean = 0, itl_p50 = 0, itl_p99 = 0;
  double e2e_mean = 0, tokens_per_second = 0;
};
Summary Summarize(const std::vector<Outcome>& outcomes, double wall_seconds);

// "colocated  qps 2.0  n=40  TTFT mean/p50/p99 ...  ITL ..." (milliseconds)
std::string FormatSummary(const std::string& label, double qps, const Summary& s);

// One rate: the summaries of every round, per setup (setups' order).
struct PlotPoint {
  double qps;
  std::vector<std::vector<Summary>> rounds;
};
using Setups = std::vector<std::pair<std::string, std::string>>;  // label, URL
// Per setup: median over rounds of TTFT and ITL mean/p50/p99 (ms), the
// min-max of p99 ITL, and ratios of the medians to the last setup
// (disaggregated).
std::string FormatRoundsTable(const Setups& setups, const PlotPoint& point);
// Writes plot.dat and plot.gp next to png and runs gnuplot: median p99 ITL
// over QPS per setup, min-max as error bars. An error says what to install
// when gnuplot is missing.
Status PlotItl(const Setups& setups, const std::vector<PlotPoint>& points, const std::string& png,
               const std::string& title);

}  // namespace kvstore::engine::loadgen
