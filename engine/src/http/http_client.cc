#include "kvstore/engine/http_client.h"

#include <utility>  // before Asio: Boost 1.74 under C++20 needs std::exchange

#include <sys/socket.h>
#include <sys/time.h>

#include <limits>
#include <sstream>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "kvstore/engine/proxy.h"

namespace kvstore::engine {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

Status Connect(asio::io_context& ioc, tcp::socket& sock, const std::string& url,
               std::chrono::milliseconds timeout, std::string* host_port) {
  std::string host, port;
  KVSTORE_RETURN_IF_ERROR(ParseHttpUrl(url, &host, &port));
  *host_port = host + ":" + port;
  boost::system::error_code ec;
  tcp::resolver resolver(ioc);
  auto eps = resolver.resolve(host, port, ec);
  if (!ec) asio::connect(sock, eps, ec);
  if (ec) return Status::Unavailable("connecting to " + url + ": " + ec.message());
  sock.set_option(tcp::no_delay(true), ec);
  timeval tv{};
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  return Status::Ok();
}

Status IoError(const std::string& what, const std::string& url,
               const boost::system::error_code& ec) {
  if (ec == asio::error::would_block || ec == asio::error::try_again ||
      ec == asio::error::timed_out)
    return Status::Timeout(what + " " + url + ": no answer in time");
  return Status::Unavailable(what + " " + url + ": " + ec.message());
}

Result<HttpResult> Request(http::verb verb, const std::string& url, const std::string& path,
                           const std::string& body, std::chrono::milliseconds timeout) {
  asio::io_context ioc;
  tcp::socket sock(ioc);
  std::string host_port;
  KVSTORE_RETURN_IF_ERROR(Connect(ioc, sock, url, timeout, &host_port));
  http::request<http::string_body> req{verb, path, 11};
  req.set(http::field::host, host_port);
  req.keep_alive(false);
  if (verb == http::verb::post) {
    req.set(http::field::content_type, "application/json");
    req.body() = body;
  }
  req.prepare_payload();
  boost::system::error_code ec;
  http::write(sock, req, ec);
  if (ec) return IoError("sending to", url, ec);
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  http::read(sock, buf, parser, ec);
  if (ec) return IoError("reading from", url, ec);
  return HttpResult{parser.get().result_int(), parser.get().body()};
}

}  // namespace

Result<HttpResult> HttpGet(const std::string& url, const std::string& path,
                           std::chrono::milliseconds timeout) {
  return Request(http::verb::get, url, path, "", timeout);
}

Result<HttpResult> HttpPost(const std::string& url, const std::string& path,
                            const std::string& body, std::chrono::milliseconds timeout) {
  return Request(http::verb::post, url, path, body, timeout);
}

Result<StreamedCompletion> StreamCompletion(const std::string& url, const std::string& body,
                                            std::chrono::milliseconds timeout,
                                            const std::string& path) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Status::InvalidArgument("body is not a JSON object");
  j["stream"] = true;
  asio::io_context ioc;
  tcp::socket sock(ioc);
  std::string host_port;
  KVSTORE_RETURN_IF_ERROR(Connect(ioc, sock, url, timeout, &host_port));
  http::request<http::string_body> req{http::verb::post, path, 11};
  req.set(http::field::host, host_port);
  req.set(http::field::content_type, "application/json");
  req.keep_alive(false);
  req.body() = j.dump();
  req.prepare_payload();
  const auto start = Clock::now();
  boost::system::error_code ec;
  http::write(sock, req, ec);
  if (ec) return IoError("sending to", url, ec);

  StreamedCompletion out;
  beast::flat_buffer buf;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  http::read_header(sock, buf, parser, ec);
  if (ec) return IoError("reading from", url, ec);
  out.status = parser.get().result_int();
  std::string pending;  // SSE text not yet split into events
  Clock::time_point last;
  char piece[8192];
  auto handle_event = [&](std::string_view data) {
    if (data == "[DONE]") return;
    nlohmann::json e = nlohmann::json::parse(data, nullptr, false);
    if (e.is_discarded()) return;
    if (e.contains("error")) {
      out.error = e["error"].value("message", e["error"].dump());
      return;
    }
    out.final_event = std::string(data);
    if (!e.contains("choices") || e["choices"].empty()) return;
    const auto& c = e["choices"][0];
    if (c.contains("token_ids"))
      for (const auto& t : c["token_ids"]) {
        out.tokens.push_back(t.get<int32_t>());
        auto now = Clock::now();
        if (out.tokens.size() == 1)
          out.ttft_seconds = Since(start);
        else
          out.itl_seconds.push_back(std::chrono::duration<double>(now - last).count());
        last = now;
      }
    out.text += c.value("text", "");
    if (c.contains("delta") && c["delta"].contains("content") && c["delta"]["content"].is_string())
      out.text += c["delta"]["content"].get<std::string>();
    if (c.contains("finish_reason") && c["finish_reason"].is_string())
      out.finish_reason = c["finish_reason"].get<std::string>();
  };
  while (!parser.is_done()) {
    parser.get().body().data = piece;
    parser.get().body().size = sizeof(piece);
    http::read_some(sock, buf, parser, ec);  // returns as soon as some body arrived
    if (ec == http::error::need_buffer) ec = {};
    if (ec) return IoError("reading the stream from", url, ec);
    pending.append(piece, sizeof(piece) - parser.get().body().size);
    if (out.status != 200) continue;
    for (size_t end; (end = pending.find("\n\n")) != std::string::npos;) {
      std::string event = pending.substr(0, end);
      pending.erase(0, end + 2);
      if (event.rfind("data: ", 0) == 0) handle_event(std::string_view(event).substr(6));
    }
  }
  if (out.status != 200) {
    nlohmann::json e = nlohmann::json::parse(pending, nullptr, false);
    out.error =
        !e.is_discarded() && e.contains("error") ? e["error"].value("message", pending) : pending;
  }
  out.e2e_seconds = Since(start);
  return out;
}

double MetricValue(const std::string& page, const std::string& name,
                   const std::string& labels_substring) {
  std::istringstream in(page);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line.compare(0, name.size(), name) != 0) continue;
    size_t rest = name.size();
    std::string labels;
    if (rest < line.size() && line[rest] == '{') {
      size_t close = line.find('}', rest);
      if (close == std::string::npos) continue;
      labels = line.substr(rest + 1, close - rest - 1);
      rest = close + 1;
    }
    if (rest >= line.size() || line[rest] != ' ') continue;
    if (!labels_substring.empty() && labels.find(labels_substring) == std::string::npos) continue;
    return std::stod(line.substr(rest + 1));
  }
  return -1;
}

}  // namespace kvstore::engine
