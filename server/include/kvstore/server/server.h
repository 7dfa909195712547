// kvstored's service: accepts connections, runs the event loop, serves
// /metrics, expires TTLs and shuts down cleanly on SIGTERM/SIGINT.
//
// Thread-safety: Run() blocks the calling thread; Stop() may be called from any thread.
#pragma once

#include <memory>
#include <string>

#include "kvstore/server/server_options.h"
#include "kvstore/status.h"

namespace kvstore::server {

class Server {
 public:
  // Opens the store and binds the listening sockets; errors name the address or path.
  static Result<std::unique_ptr<Server>> Create(const ServerOptions& options);
  ~Server();

  // Serves until Stop() or a SIGTERM/SIGINT; returns once everything is closed.
  Status Run();
  void Stop();
  // The bound addresses (useful with port 0).
  std::string listen_address() const;
  std::string metrics_address() const;

 private:
  class Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

inline constexpr const char* kVersion = "0.1.0";

}  // namespace kvstore::server
