// The /metrics (and /healthz) HTTP endpoint of kvstored, served from the
// daemon's own Asio event loop: every request has a deadline to arrive and to
// be written (a slow or half-open client holds only its own socket until
// then), at most kMaxClients are open at once (the oldest goes first when a
// new one needs its place), and a scrape never waits behind another client.
//
// Thread-safety: all methods are called from the io_context's thread, except
// Stop, which may be called from any thread.
#pragma once

#include <utility>  // before asio: Boost 1.74 Asio under C++20 needs std::exchange

#include <chrono>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/collectable.h>
#include <boost/asio.hpp>

#include "kvstore/status.h"

namespace kvstore::server {

class MetricsHttpServer {
 public:
  using Collectables = std::vector<std::shared_ptr<prometheus::Collectable>>;

  MetricsHttpServer(boost::asio::io_context& io, Collectables collectables,
                    std::chrono::milliseconds deadline = std::chrono::seconds(5));
  ~MetricsHttpServer();
  // Binds HOST:PORT (port 0: any free port); Unavailable naming the address.
  Status Listen(const std::string& host_port);
  void Start();
  void Stop();
  std::string address() const { return address_; }

  static constexpr size_t kMaxClients = 64;
  static constexpr size_t kMaxRequestBytes = 8192;

 private:
  class Client;
  void Accept();
  std::string Render() const;

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  Collectables collectables_;
  std::chrono::milliseconds deadline_;
  std::list<std::weak_ptr<Client>> clients_;  // oldest first
  std::string address_;
  bool stopped_ = false;
};

}  // namespace kvstore::server
