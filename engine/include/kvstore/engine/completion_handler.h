// CompletionHandler: the HTTP routes of a model engine (roles both, prefill,
// decode): POST /v1/completions, POST /v1/chat/completions, GET /v1/models,
// GET /health, GET /metrics (405 for another method on these paths). Parses
// the request on the I/O thread, Submits one job per prompt to the Scheduler
// and relays the RequestStream back, as one JSON answer or as server-sent
// events (one chunk per token of each choice, text never splitting a UTF-8
// character).
//
// Thread-safety: Handle runs concurrently on any number of connections.
#pragma once

#include "kvstore/engine/engine_metrics.h"
#include "kvstore/engine/engine_options.h"
#include "kvstore/engine/http_server.h"
#include "kvstore/engine/scheduler.h"

namespace kvstore::engine {

class CompletionHandler {
 public:
  // REQUIRES: scheduler and metrics outlive the handler.
  CompletionHandler(const EngineOptions& options, Scheduler* scheduler, EngineMetrics* metrics)
      : options_(options), scheduler_(scheduler), metrics_(metrics) {}

  boost::asio::awaitable<void> Handle(HttpRequest& req, HttpResponder& res);

 private:
  boost::asio::awaitable<void> Complete(HttpRequest& req, HttpResponder& res, Endpoint endpoint);

  EngineOptions options_;
  Scheduler* scheduler_;
  EngineMetrics* metrics_;
  std::atomic<uint64_t> next_id_{1};
};

// 405 (with Allow) for a known path asked with another method, 404 for an
// unknown path; returns false when the route exists and the method is right.
boost::asio::awaitable<bool> HandleRouteErrors(HttpRequest& req, HttpResponder& res);

// Routes shared by every role: /health is "ok" when health is OK (with
// "store_node" when store_node is not empty), /metrics renders metrics.
// Returns false when the path is not one of them.
boost::asio::awaitable<bool> HandleCommonRoutes(HttpRequest& req, HttpResponder& res,
                                                EngineMetrics* metrics, const Status& health,
                                                Role role, const std::string& store_node = "");

}  // namespace kvstore::engine
