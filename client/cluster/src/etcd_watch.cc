// EtcdWatch: the gateway's POST /v3/watch, read as a stream of JSON lines.
#include <sys/socket.h>

#include <utility>  // before Asio (Boost 1.74 under C++20)

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "etcd_internal.h"
#include "kvstore/cluster/etcd_client.h"
#include "kvstore/cluster/etcd_decode.h"

namespace kvstore::cluster {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using json = nlohmann::json;

EtcdWatch::EtcdWatch(EtcdOptions options) : options_(std::move(options)) {}
EtcdWatch::~EtcdWatch() = default;

void EtcdWatch::Stop() {
  std::lock_guard lock(mu_);
  stopped_ = true;
  // Wakes Run's blocking read; the socket itself stays Run's to close.
  if (socket_ >= 0) ::shutdown(socket_, SHUT_RDWR);
}

Status EtcdWatch::Run(const std::string& prefix, int64_t start_revision,
                      const std::function<void(const EtcdWatchResponse&)>& on_response) {
  const std::string endpoint = options_.endpoints[current_];
  auto fail = [&](const std::string& what, const beast::error_code& ec) {
    current_ = (current_ + 1) % options_.endpoints.size();  // the next Run tries the next
    return Status::Unavailable("etcd watch at " + endpoint + ": " + what + ": " + ec.message());
  };
  std::string host, port;
  KVSTORE_RETURN_IF_ERROR(detail::SplitEndpoint(endpoint, &host, &port));
  asio::io_context io;
  beast::tcp_stream stream(io);
  beast::error_code ec;
  auto results = asio::ip::tcp::resolver(io).resolve(host, port, ec);
  if (ec) return fail("resolve", ec);
  stream.expires_after(options_.request_timeout);
  stream.connect(results, ec);
  if (ec) return fail("connect", ec);
  {
    std::lock_guard lock(mu_);
    if (stopped_) return Status::Ok();  // stopped
    socket_ = stream.socket().native_handle();
  }
  struct Forget {  // Stop must not touch the fd once this Run is done with it
    EtcdWatch* w;
    ~Forget() {
      std::lock_guard lock(w->mu_);
      w->socket_ = -1;
    }
  } forget{this};

  json create = {{"key", Base64Encode(prefix)},
                 {"range_end", Base64Encode(PrefixRangeEnd(prefix))},
                 {"start_revision", std::to_string(start_revision)}};
  http::request<http::string_body> req{http::verb::post, "/v3/watch", 11};
  req.set(http::field::host, endpoint);
  req.set(http::field::content_type, "application/json");
  req.body() = json{{"create_request", create}}.dump();
  req.prepare_payload();
  http::write(stream, req, ec);
  if (ec) return fail("send", ec);
  // No deadline from here: the stream is idle while nothing changes.
  stream.expires_never();

  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  http::read_header(stream, buffer, parser, ec);
  if (ec) return fail("receive", ec);
  if (parser.get().result() != http::status::ok) {
    return Status::Unavailable("etcd watch at " + endpoint + ": HTTP " +
                               std::to_string(parser.get().result_int()));
  }
  std::string pending;  // bytes of a message not complete yet
  char piece[8192];
  while (!parser.is_done()) {
    parser.get().body().data = piece;
    parser.get().body().size = sizeof(piece);
    http::read_some(stream, buffer, parser, ec);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      std::lock_guard lock(mu_);
      if (stopped_) return Status::Ok();  // stopped
      return fail("stream", ec);
    }
    pending.append(piece, sizeof(piece) - parser.get().body().size);
    // One JSON message per line.
    for (size_t nl; (nl = pending.find('\n')) != std::string::npos; pending.erase(0, nl + 1)) {
      auto resp = DecodeEtcdWatchMessage(std::string_view(pending).substr(0, nl));
      if (resp.status().code() == StatusCode::kInvalidArgument) continue;  // not a message
      if (resp.status().code() == StatusCode::kNotFound) {
        return Status::NotFound(resp.status().message() + " at " + endpoint);
      }
      KVSTORE_RETURN_IF_ERROR(resp.status());
      on_response(*resp);
    }
  }
  std::lock_guard lock(mu_);
  if (stopped_) return Status::Ok();  // stopped
  return Status::Unavailable("etcd watch at " + endpoint + ": the stream ended");
}

}  // namespace kvstore::cluster
