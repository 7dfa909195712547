// Cluster: the processes of a disaggregated deployment for e2e tests --
// kvstored, a colocated (--role both) engine as the reference, prefill,
// decode and a proxy -- plus helpers to send completions and read metrics.
//
// Thread-safety: Complete and the metric helpers may be called from several
// threads at once; Start/Stop from one.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine_process.h"
#include "test_daemon.h"

namespace kvstore::testing {

struct ClusterOptions {
  std::vector<std::string> kvstored_args;  // e.g. {"--ttl", "1s"}
  std::vector<std::string> prefill_args;
  std::vector<std::string> decode_args;  // e.g. {"--on-kv-miss", "fail"}
  std::vector<std::string> both_args;    // e.g. {"--max-prefill-chunk", "32"}
  std::vector<std::string> model_args;   // every model engine, e.g. {"--model", dir}
  bool both = true, prefill = true, decode = true, proxy = true;
};

struct Completion {
  int status = 0;
  std::vector<int32_t> tokens;
  std::string error;
  std::string body;  // the raw answer (non-streamed) or the final event (streamed)
};

class Cluster {
 public:
  // Starts what options ask for; *error says what did not come up.
  static std::unique_ptr<Cluster> Start(const ClusterOptions& options, std::string* error);

  TestDaemon& store() { return *store_; }
  EngineProcess* both() { return both_.get(); }
  EngineProcess* prefill() { return prefill_.get(); }
  EngineProcess* decode() { return decode_.get(); }
  EngineProcess* proxy() { return proxy_.get(); }

  // Stops every engine with SIGTERM, then the store; returns false (with the
  // culprit in *error) when one does not exit 0.
  bool StopAll(std::string* error);

 private:
  std::unique_ptr<TestDaemon> store_;
  std::unique_ptr<EngineProcess> both_, prefill_, decode_, proxy_;
};

// POST /v1/completions; streamed through SSE when stream is true.
Completion Complete(const std::string& url, const std::string& body, bool stream);
// A prompt of token ids "{"prompt":[...],"max_tokens":n,...}".
std::string TokenPromptBody(const std::vector<int32_t>& tokens, int max_tokens,
                            float temperature = 0, uint64_t seed = 0);
// GET url/metrics and read one sample; -1 when absent.
double EngineMetric(const std::string& url, const std::string& name,
                    const std::string& labels_substring = "");

}  // namespace kvstore::testing
