#include "kvstore/engine/completion_handler.h"

#include <spdlog/spdlog.h>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "kvstore/engine/tokenizer.h"

namespace kvstore::engine {

namespace asio = boost::asio;

asio::awaitable<bool> HandleCommonRoutes(HttpRequest& req, HttpResponder& res,
                                         EngineMetrics* metrics, const Status& health, Role role) {
  std::string_view target(req.target().data(), req.target().size());
  if (req.method() == http::verb::get && target == "/health") {
    if (health.ok()) {
      co_await res.Send(http::status::ok, "application/json",
                        "{\"status\":\"ok\",\"role\":\"" + std::string(RoleName(role)) + "\"}");
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
  if (target == "/health" || target == "/metrics") {
    Status health = target == "/health" ? scheduler_->Health() : Status::Ok();
    if (co_await HandleCommonRoutes(req, res, metrics_, health, options_.role)) co_return;
  }
  if (target == "/v1/completions" && req.method() == http::verb::post) {
    co_await Complete(req, res);
    co_return;
  }
  co_await res.Send(
      http::status::not_found, "application/json",
      ErrorJson("no route " + std::string(req.method_string().data(), req.method_string().size()) +
                    " " + std::string(target) +
                    "; this engine serves POST /v1/completions, GET /health, "
                    "GET /metrics",
                "not_found", 404));
}

asio::awaitable<void> CompletionHandler::Complete(HttpRequest& req, HttpResponder& res) {
  auto parsed = ParseCompletionRequest(req.body(), scheduler_->vocab_size(),
                                       scheduler_->has_text_tokenizer(), options_.max_tokens_limit);
  if (!parsed.ok()) {
    metrics_->RequestDone(false);
    co_await res.Send(http::status::bad_request, "application/json",
                      ErrorJson(parsed.status().message(), "invalid_request_error", 400));
    co_return;
  }
  const bool stream = parsed->stream;
  const std::string id =
      "cmpl-" + std::string(RoleName(options_.role)) + "-" + std::to_string(next_id_.fetch_add(1));
  auto out = std::make_shared<RequestStream>(co_await asio::this_coro::executor);
  scheduler_->Submit(std::move(parsed).value(), out);

  bool started = false;
  try {
    for (;;) {
      StreamEvent e = co_await out->Next();
      if (e.kind == StreamEvent::Kind::kToken) {
        if (!started) {
          co_await res.BeginChunked(http::status::ok, "text/event-stream");
          started = true;
        }
        std::string text;
        if (scheduler_->has_text_tokenizer()) {
          std::vector<int32_t> one{e.token};
          text = ByteTokenizer::Decode(one);
        }
        co_await res.Chunk(StreamTokenEvent(id, options_.model_name, e.token, text));
        continue;
      }
      if (e.kind == StreamEvent::Kind::kDone) {
        if (stream) {
          if (!started) co_await res.BeginChunked(http::status::ok, "text/event-stream");
          co_await res.Chunk(StreamFinalEvents(id, options_.model_name, e.result));
          co_await res.EndChunked();
        } else {
          co_await res.Send(http::status::ok, "application/json",
                            DumpJson(CompletionJson(id, options_.model_name, e.result)));
        }
        co_return;
      }
      // kError
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
