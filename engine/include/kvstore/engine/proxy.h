// Proxy: the --role proxy front, like vLLM's disaggregated prefill proxy.
// For each POST /v1/completions or /v1/chat/completions it
//   1. sends the request to the next prefill engine (round-robin) with
//      max_tokens=1, n=1 and stream=false (once per prompt when "prompt" is an
//      array of prompts), and waits for its answer (the prompt's KV is then in
//      kvstored); a 4xx from prefill (the client's mistake) is passed on;
//   2. sends the original request to the next decode engine and relays its
//      answer (streamed when the client asked for stream) byte for byte.
// Under a cluster's local placement the prefill answers where it put the KV
// (kv_transfer_params.remote_store_node) and the decode request carries it
// (one node per prompt when they differ), so the decode pulls from that node
// in one hop wherever it runs; with --overlap the node is the one that prefill
// engine answered last.
// If the prefill fails, the decode request says so (kv_transfer_params.
// remote_prefill=false) and the decode engine applies its --on-kv-miss policy
// at once instead of waiting for KV that will not come.
// With --overlap, both requests go out at once: decode's drop_select waits for
// the blocks while prefill inserts them, saving the prefill answer's round
// trip (a failed prefill then costs decode its --kv-timeout).
//
// Thread-safety: Handle runs concurrently on any number of connections.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "kvstore/engine/engine_metrics.h"
#include "kvstore/engine/engine_options.h"
#include "kvstore/engine/http_server.h"

namespace kvstore::engine {

// "http://HOST:PORT[/...]" or "HOST:PORT" -> host and port.
Status ParseHttpUrl(std::string_view url, std::string* host, std::string* port);

class Proxy {
 public:
  // InvalidArgument when a URL does not parse or a list is empty.
  static Result<std::unique_ptr<Proxy>> Create(const EngineOptions& options,
                                               EngineMetrics* metrics);

  boost::asio::awaitable<void> Handle(HttpRequest& req, HttpResponder& res);

 private:
  struct Upstream {
    std::string url, host, port;
  };
  Proxy(const EngineOptions& options, EngineMetrics* metrics)
      : options_(options), metrics_(metrics) {}
  boost::asio::awaitable<void> Complete(HttpRequest& req, HttpResponder& res, std::string path);
  // GET /v1/models, relayed from a decode engine.
  boost::asio::awaitable<void> Models(HttpResponder& res);
  struct PrefillAnswer {
    bool ok = false;
    int status = 0;  // 0 when no HTTP answer came
    std::string body;
    std::string error;    // when !ok
    std::string kv_node;  // its kv_transfer_params.remote_store_node, "" when none
  };
  // index: into prefill_.
  boost::asio::awaitable<PrefillAnswer> CallPrefill(size_t index, std::string path,
                                                    std::string body);
  // --overlap: the store node prefill engine index writes to, asked once of its
  // /health ("" when it has none or does not answer; asked again next time).
  boost::asio::awaitable<std::string> PrefillNode(size_t index);
  // --overlap: the prefill request, detached.
  boost::asio::awaitable<void> PrefillInBackground(size_t index, std::string path,
                                                   std::string body);

  EngineOptions options_;
  EngineMetrics* metrics_;
  std::vector<Upstream> prefill_;
  std::vector<Upstream> decode_;
  std::atomic<uint64_t> next_prefill_{0};
  std::atomic<uint64_t> next_decode_{0};
  std::mutex kv_nodes_mu_;
  // By prefill index: its store node, from its /health or its last answer (for
  // --overlap); no entry = not known yet.
  std::map<size_t, std::string> prefill_kv_node_;  // GUARDED_BY(kv_nodes_mu_)
};

}  // namespace kvstore::engine
