// A small blocking HTTP/1.1 client for tools and tests (kvstore-loadgen, the
// e2e tests): GET and POST, and a streamed completion that records when each
// token arrived. The proxy does not use it (it is asynchronous).
//
// Thread-safety: functions are independent; call from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "kvstore/status.h"

namespace kvstore::engine {

struct HttpResult {
  int status = 0;
  std::string body;
};

// url: "http://HOST:PORT" (a path in it is ignored); path: "/health".
// Unavailable when the connection fails, Timeout when no answer in time.
Result<HttpResult> HttpGet(const std::string& url, const std::string& path,
                           std::chrono::milliseconds timeout = std::chrono::seconds(30));
Result<HttpResult> HttpPost(const std::string& url, const std::string& path,
                            const std::string& body,
                            std::chrono::milliseconds timeout = std::chrono::seconds(120));

struct StreamedCompletion {
  int status = 0;
  std::vector<int32_t> tokens;
  std::string text;
  std::string finish_reason;
  std::string error;                // error message of a non-200 or an error event
  std::string final_event;          // JSON of the last data event (usage, kvstore)
  double ttft_seconds = 0;          // send -> first token event
  double e2e_seconds = 0;           // send -> [DONE]
  std::vector<double> itl_seconds;  // between consecutive token events
};

// POSTs body (a completions request; "stream" is forced to true) to
// url + path and reads the server-sent events (tokens and text of every
// choice, concatenated in arrival order; chat deltas included).
Result<StreamedCompletion> StreamCompletion(
    const std::string& url, const std::string& body,
    std::chrono::milliseconds timeout = std::chrono::seconds(300),
    const std::string& path = "/v1/completions");

// The value of one sample of a Prometheus text page, e.g.
// MetricValue(page, "kvstore_entries", "tier=\"host\""); -1 when absent.
// labels_substring must appear inside the {...} of the sample (empty: any).
double MetricValue(const std::string& page, const std::string& name,
                   const std::string& labels_substring = "");

}  // namespace kvstore::engine
