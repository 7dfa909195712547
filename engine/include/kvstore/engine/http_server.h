// HttpServer: the engine's HTTP/1.1 front (Boost.Beast over one Asio
// io_context run by io_threads threads). Each connection is a coroutine on
// its own strand; requests on a connection are handled in order (keep-alive).
// The server does no model work: handlers hand compute to other threads and
// co_await their results.
//
// Thread-safety: Start once, then Stop from any thread (or a signal handler
// via the io_context's signal_set in main).
#pragma once

#include <utility>  // before Asio: Boost 1.74 under C++20 needs std::exchange

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include "kvstore/status.h"

namespace kvstore::engine {

namespace http = boost::beast::http;
using HttpRequest = http::request<http::string_body>;

// Writes the answer to one request: either Send once, or BeginChunked, any
// number of Chunk, EndChunked. Throws boost::system::system_error when the
// client went away.
class HttpResponder {
 public:
  HttpResponder(boost::beast::tcp_stream& stream, unsigned version, bool keep_alive)
      : stream_(stream), version_(version), keep_alive_(keep_alive) {}

  // allow: the Allow header of a 405, or empty.
  boost::asio::awaitable<void> Send(http::status status, std::string_view content_type,
                                    std::string body, std::string_view allow = {});
  boost::asio::awaitable<void> BeginChunked(http::status status, std::string_view content_type);
  boost::asio::awaitable<void> Chunk(std::string_view data);
  boost::asio::awaitable<void> EndChunked();
  bool keep_alive() const { return keep_alive_; }

 private:
  boost::beast::tcp_stream& stream_;
  unsigned version_;
  bool keep_alive_;
};

using HttpHandler = std::function<boost::asio::awaitable<void>(HttpRequest&, HttpResponder&)>;

class HttpServer {
 public:
  // Binds listen ("HOST:PORT"; port 0 picks one). InvalidArgument or
  // Unavailable (port taken) with the address in the message.
  static Result<std::unique_ptr<HttpServer>> Create(boost::asio::io_context& ioc,
                                                    const std::string& listen, HttpHandler handler);
  uint16_t port() const { return port_; }
  // Starts accepting (on ioc's threads, run by the caller).
  void Start();
  // Stops accepting; open connections finish their current request.
  void Stop();

 private:
  HttpServer(boost::asio::io_context& ioc, HttpHandler handler);
  boost::asio::awaitable<void> Accept();
  boost::asio::awaitable<void> Session(boost::asio::ip::tcp::socket socket);

  boost::asio::io_context& ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  HttpHandler handler_;
  uint16_t port_ = 0;
};

}  // namespace kvstore::engine
