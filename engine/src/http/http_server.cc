#include "kvstore/engine/http_server.h"

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include "kvstore/units.h"

namespace kvstore::engine {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::use_awaitable;
using tcp = asio::ip::tcp;

asio::awaitable<void> HttpResponder::Send(http::status status, std::string_view content_type,
                                          std::string body, std::string_view allow) {
  http::response<http::string_body> res{status, version_};
  res.set(http::field::server, "kvstore-engine");
  if (!allow.empty())
    res.set(http::field::allow, boost::beast::string_view(allow.data(), allow.size()));
  res.set(http::field::content_type,
          boost::beast::string_view(content_type.data(), content_type.size()));
  res.keep_alive(keep_alive_);
  res.body() = std::move(body);
  res.prepare_payload();
  co_await http::async_write(stream_, res, use_awaitable);
}

asio::awaitable<void> HttpResponder::BeginChunked(http::status status,
                                                  std::string_view content_type) {
  http::response<http::empty_body> res{status, version_};
  res.set(http::field::server, "kvstore-engine");
  res.set(http::field::content_type,
          boost::beast::string_view(content_type.data(), content_type.size()));
  res.set(http::field::cache_control, "no-cache");
  res.keep_alive(keep_alive_);
  res.chunked(true);
  http::response_serializer<http::empty_body> sr{res};
  co_await http::async_write_header(stream_, sr, use_awaitable);
}

asio::awaitable<void> HttpResponder::Chunk(std::string_view data) {
  if (data.empty()) co_return;  // an empty chunk would end the body
  co_await asio::async_write(stream_, http::make_chunk(asio::buffer(data.data(), data.size())),
                             use_awaitable);
}

asio::awaitable<void> HttpResponder::EndChunked() {
  co_await asio::async_write(stream_, http::make_chunk_last(), use_awaitable);
}

HttpServer::HttpServer(asio::io_context& ioc, HttpHandler handler)
    : ioc_(ioc), acceptor_(asio::make_strand(ioc)), handler_(std::move(handler)) {}

Result<std::unique_ptr<HttpServer>> HttpServer::Create(asio::io_context& ioc,
                                                       const std::string& listen,
                                                       HttpHandler handler) {
  std::string host;
  uint16_t port = 0;
  KVSTORE_RETURN_IF_ERROR(SplitHostPort(listen, &host, &port).WithContext("--listen"));
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec)
    return Status::InvalidArgument("--listen " + listen + ": \"" + host +
                                   "\" is not an IP address");
  std::unique_ptr<HttpServer> s(new HttpServer(ioc, std::move(handler)));
  tcp::endpoint ep(addr, port);
  s->acceptor_.open(ep.protocol(), ec);
  if (!ec) s->acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) s->acceptor_.bind(ep, ec);
  if (!ec) s->acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return Status::Unavailable("cannot listen on " + listen + ": " + ec.message() +
                               " (is another process on that port?)");
  s->port_ = s->acceptor_.local_endpoint().port();
  return s;
}

void HttpServer::Start() { asio::co_spawn(acceptor_.get_executor(), Accept(), asio::detached); }

void HttpServer::Stop() {
  asio::post(acceptor_.get_executor(), [this] {
    boost::system::error_code ec;
    acceptor_.close(ec);
  });
}

asio::awaitable<void> HttpServer::Accept() {
  for (;;) {
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor_.async_accept(asio::make_strand(ioc_),
                                                         asio::redirect_error(use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
    if (ec) {
      spdlog::warn("accept failed: {}", ec.message());
      continue;
    }
    auto executor = socket.get_executor();
    asio::co_spawn(executor, Session(std::move(socket)), asio::detached);
  }
}

asio::awaitable<void> HttpServer::Session(tcp::socket socket) {
  boost::system::error_code nodelay_ec;
  socket.set_option(tcp::no_delay(true), nodelay_ec);  // stream tokens without Nagle delays
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  try {
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(64u << 20);
      boost::system::error_code ec;
      co_await http::async_read(stream, buffer, parser, asio::redirect_error(use_awaitable, ec));
      if (ec == http::error::end_of_stream || ec == asio::error::eof ||
          ec == asio::error::connection_reset)
        break;
      if (ec) {
        HttpResponder r(stream, 11, false);
        co_await r.Send(http::status::bad_request, "application/json",
                        "{\"error\":{\"message\":\"bad HTTP request: " + ec.message() + "\"}}");
        break;
      }
      HttpRequest req = parser.release();
      HttpResponder responder(stream, req.version(), req.keep_alive());
      co_await handler_(req, responder);
      if (!responder.keep_alive()) break;
    }
  } catch (const boost::system::system_error& e) {
    spdlog::debug("connection closed: {}", e.what());
  } catch (const std::exception& e) {
    spdlog::error("HTTP handler failed: {}", e.what());
  }
  boost::system::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

}  // namespace kvstore::engine
