// Fuzzes the engine's HTTP front as a client reaches it: Boost.Beast's request
// parser with the limits HttpServer::Session sets, then ParseRequest on
// the body (the POST /v1/completions and /v1/chat/completions JSON). Any exception other than the
// parser's error codes, or a sanitizer report, is a finding.
#include <utility>  // before Beast: Boost 1.74 under C++20 needs std::exchange

#include <boost/beast/http.hpp>

#include "fuzz_util.h"
#include "kvstore/engine/completion_api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace http = boost::beast::http;
  using namespace kvstore;
  http::request_parser<http::string_body> parser;
  parser.body_limit(64u << 20);  // as HttpServer::Session
  parser.eager(true);
  boost::system::error_code ec;
  boost::asio::const_buffer buf(data, size);
  size_t used = 0;
  while (!ec && !parser.is_done() && used < size) {
    size_t n = parser.put(
        boost::asio::buffer(static_cast<const char*>(buf.data()) + used, size - used), ec);
    if (ec == http::error::need_more) {
      ec = {};
      if (n == 0) break;
    }
    used += n;
  }
  std::string body;
  if (!ec && parser.is_done()) {
    body = parser.get().body();
  } else {
    body.assign(reinterpret_cast<const char*>(data), size);  // the JSON parser on its own
  }
  static const engine::ByteTokenizer tokenizer;
  for (bool text : {false, true}) {
    engine::ApiContext ctx;
    ctx.vocab_size = engine::ByteTokenizer::kVocabSize;
    ctx.tokenizer = text ? &tokenizer : nullptr;
    ctx.max_tokens_limit = 4096;
    ctx.model_name = "kvstore-tiny";
    for (auto ep : {engine::Endpoint::kCompletions, engine::Endpoint::kChat}) {
      engine::ApiError error;
      auto r = engine::ParseRequest(ep, body, ctx, &error);
      if (r) {
        FUZZ_CHECK(!r->empty());
        for (const auto& req : *r) {
          FUZZ_CHECK(!req.prompt.empty());
          FUZZ_CHECK(req.max_tokens >= 1 && req.max_tokens <= 4096);
          for (int32_t t : req.prompt) FUZZ_CHECK(t >= 0 && t < ctx.vocab_size);
        }
      } else {
        FUZZ_CHECK(error.http_status >= 400 && error.http_status < 500);
        FUZZ_CHECK(!error.message.empty());
      }
    }
  }
  return 0;
}
