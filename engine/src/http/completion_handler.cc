#include "kvstore/engine/completion_handler.h"

#include <map>
#include <set>

#include <spdlog/spdlog.h>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "kvstore/engine/text_stream.h"

namespace kvstore::engine {

namespace asio = boost::asio;

namespace {

struct Route {
  std::string_view path;
  http::verb method;
};
constexpr Route kRoutes[] = {{"/v1/completions", http::verb::post},
                             {"/v1/chat/completions", http::verb::post},
                             {"/v1/models", http::verb::get},
                             {"/health", http::verb::get},
                             {"/metrics", http::verb::get}};

}  // namespace

asio::awaitable<bool> HandleRouteErrors(HttpRequest& req, HttpResponder& res) {
  std::string_view target(req.target().data(), req.target().size());
  if (auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
  const std::string method(req.method_string().data(), req.method_string().size());
  for (const Route& r : kRoutes) {
    if (r.path != target) continue;
    if (r.method == req.method()) co_return false;
    const std::string allow = r.method == http::verb::post ? "POST" : "GET";
    ApiError e;
    e.http_status = 405;
    e.code = "method_not_allowed";
    e.message = "method " + method + " is not allowed on " + std::string(target) + "; use " + allow;
    co_await res.Send(http::status::method_not_allowed, "application/json", ErrorJson(e), allow);
    co_return true;
  }
  ApiError e;
  e.http_status = 404;
  e.type = "not_found_error";
  e.code = "not_found";
  e.message = "no route " + method + " " + std::string(target) +
              "; this engine serves POST /v1/completions, POST /v1/chat/completions, GET "
              "/v1/models, GET /health, GET /metrics";
  co_await res.Send(http::status::not_found, "application/json", ErrorJson(e));
  co_return true;
}

asio::awaitable<bool> HandleCommonRoutes(HttpRequest& req, HttpResponder& res,
                                         EngineMetrics* metrics, const Status& health, Role role,
                                         const std::string& store_node) {
  std::string_view target(req.target().data(), req.target().size());
  if (req.method() == http::verb::get && target == "/health") {
    if (health.ok()) {
      nlohmann::json j = {{"status", "ok"}, {"role", std::string(RoleName(role))}};
      if (!store_node.empty()) j["store_node"] = store_node;
      co_await res.Send(http::status::ok, "application/json", j.dump());
    } else {
      co_await res.Send(http::status::service_unavailable, "application/json",
                        ErrorJson(health.ToString(), "unhealthy", 503));
    }
    co_return true;
  }
  if (req.method() == http::verb::get && target == "/metrics") {
    co_await res.Send(http::status::ok, "text/plain; version=0.0.4", metrics->Render());
    co_return true;
  }
  co_return false;
}

asio::awaitable<void> CompletionHandler::Handle(HttpRequest& req, HttpResponder& res) {
  std::string_view target(req.target().data(), req.target().size());
  if (co_await HandleRouteErrors(req, res)) co_return;
  if (target == "/health" || target == "/metrics") {
    Status health = target == "/health" ? scheduler_->Health() : Status::Ok();
    if (co_await HandleCommonRoutes(req, res, metrics_, health, options_.role,
                                    scheduler_->kv_node()))
      co_return;
  }
  if (target == "/v1/models") {
    co_await res.Send(http::status::ok, "application/json", ModelsJson(options_.model_name));
    co_return;
  }
  co_await Complete(req, res,
                    target == "/v1/chat/completions" ? Endpoint::kChat : Endpoint::kCompletions);
}

asio::awaitable<void> CompletionHandler::Complete(HttpRequest& req, HttpResponder& res,
                                                  Endpoint endpoint) {
  ApiError error;
  auto parsed = ParseRequest(endpoint, req.body(), scheduler_->api_context(), &error);
  if (!parsed) {
    metrics_->RequestDone(false);
    co_await res.Send(static_cast<http::status>(error.http_status), "application/json",
                      ErrorJson(error));
    co_return;
  }
  std::vector<CompletionRequest> prompts = std::move(parsed).value();
  const CompletionRequest& first = prompts.front();
  ResponseContext ctx;
  ctx.endpoint = endpoint;
  ctx.id = std::string(endpoint == Endpoint::kChat ? "chatcmpl-" : "cmpl-") +
           std::string(RoleName(options_.role)) + "-" + std::to_string(next_id_.fetch_add(1));
  ctx.model = options_.model_name;
  ctx.created = NowUnixSeconds();
  ctx.tokenizer = scheduler_->api_context().tokenizer;
  ctx.logprobs = first.logprobs >= 0;
  ctx.include_usage = first.include_usage;
  const bool stream = first.stream;
  const int n = first.n;
  std::vector<std::string> echo;  // per prompt
  for (const CompletionRequest& p : prompts) echo.push_back(SanitizeUtf8(p.echo_text));

  auto out = std::make_shared<RequestStream>(co_await asio::this_coro::executor);
  for (CompletionRequest& p : prompts) scheduler_->Submit(std::move(p), out);
  size_t remaining = echo.size();
  std::vector<CompletionResult> results;
  std::set<int> seen;  // choices that sent their first chunk

  bool started = false;
  try {
    for (;;) {
      StreamEvent e = co_await out->Next();
      if (e.kind == StreamEvent::Kind::kToken) {
        if (!started) {
          co_await res.BeginChunked(http::status::ok, "text/event-stream");
          started = true;
        }
        ChoiceDelta& d = e.delta;
        d.first = seen.insert(d.index).second;
        if (d.first) d.text = echo[d.index / n] + d.text;
        co_await res.Chunk(StreamChunk(ctx, d));
        continue;
      }
      if (e.kind == StreamEvent::Kind::kDone) {
        results.push_back(std::move(e.result));
        if (--remaining > 0) continue;
        if (stream) {
          if (!started) co_await res.BeginChunked(http::status::ok, "text/event-stream");
          co_await res.Chunk(StreamFinalEvents(ctx, results));
          co_await res.EndChunked();
        } else {
          for (CompletionResult& r : results)
            for (ChoiceResult& c : r.choices) c.text = echo[c.index / n] + c.text;
          co_await res.Send(http::status::ok, "application/json",
                            DumpJson(ResponseJson(ctx, results)));
        }
        co_return;
      }
      // kError: the other prompts of the request are dropped too.
      out->Cancel();
      if (started) {  // mid-stream: an error event, then end the stream
        co_await res.Chunk("data: " + ErrorJson(e.message, e.error_type, e.http_status) +
                           "\n\ndata: [DONE]\n\n");
        co_await res.EndChunked();
      } else {
        co_await res.Send(static_cast<http::status>(e.http_status), "application/json",
                          ErrorJson(e.message, e.error_type, e.http_status));
      }
      co_return;
    }
  } catch (...) {
    out->Cancel();  // the worker drops the request at its next step
    throw;
  }
}

}  // namespace kvstore::engine
