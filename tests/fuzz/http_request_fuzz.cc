// Fuzzes the engine's HTTP front as a client reaches it: Boost.Beast's request
// parser with the limits HttpServer::Session sets, then ParseCompletionRequest
// on the body (the POST /v1/completions JSON). Any exception other than the
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
  for (bool text : {false, true}) {
    auto r = engine::ParseCompletionRequest(body, /*vocab_size=*/256, text,
                                            /*max_tokens_limit=*/4096);
    if (r.ok()) {
      FUZZ_CHECK(!r->prompt.empty());
      FUZZ_CHECK(r->max_tokens >= 1 && r->max_tokens <= 4096);
      for (int32_t t : r->prompt) FUZZ_CHECK(t >= 0 && (t < 256 || text));
    } else {
      FUZZ_CHECK(r.status().code() == StatusCode::kInvalidArgument);
    }
  }
  return 0;
}
