// Binding a TCP acceptor to HOST:PORT, shared by the client listener and the
// metrics endpoint.
#pragma once

#include <utility>  // before asio: Boost 1.74 Asio under C++20 needs std::exchange

#include <string>

#include <boost/asio.hpp>

#include "kvstore/status.h"
#include "kvstore/units.h"

namespace kvstore::server {

// Opens, binds and listens; `*bound` = the bound "ADDRESS:PORT" (port 0 picks
// a free one). Errors name `flag` and end with `hint` (what to do).
inline Status ListenTcp(boost::asio::ip::tcp::acceptor& acceptor, const std::string& host_port,
                        const std::string& flag, const std::string& hint, std::string* bound) {
  namespace asio = boost::asio;
  using tcp = asio::ip::tcp;
  std::string host;
  uint16_t port = 0;
  KVSTORE_RETURN_IF_ERROR(SplitHostPort(host_port, &host, &port).WithContext(flag));
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) return Status::InvalidArgument(flag + ": '" + host + "' is not an IP address");
  tcp::endpoint ep(addr, port);
  acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(ep, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status::Unavailable("cannot listen on " + host_port + ": " + ec.message() + hint);
  auto local = acceptor.local_endpoint();
  *bound = local.address().to_string() + ":" + std::to_string(local.port());
  return Status::Ok();
}

}  // namespace kvstore::server
