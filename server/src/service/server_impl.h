// The daemon behind Server (server.h): the io contexts, the listeners, the
// store, metrics and what every connection shares (ServiceContext). Its
// methods live in server.cc (start, run, shutdown), server_listen.cc
// (accepting connections) and server_hardware.cc (GPU and RDMA set-up).
//
// Threading: Init runs before the io threads start; the accept and signal
// handlers run on io context 0; Stop may be called from any thread.
#pragma once

#include <utility>  // before asio: Boost 1.74 Asio under C++20 needs std::exchange

#include <atomic>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include "auth.h"
#include "connection.h"
#include "connection_registry.h"
#include "kvstore/device/gpu_probe.h"
#include "kvstore/rdma/device.h"
#include "kvstore/server/metrics.h"
#include "kvstore/server/server.h"
#include "kvstore/server/store.h"
#include "kvstore/transport/negotiation.h"
#include "metrics_http.h"

namespace kvstore::server {

class Server::Impl {
 public:
  // One io_context per io thread, each connection pinned to one of them: a
  // connection's handlers never hop threads (no cross-core wake-ups per chunk).
  // Context 0 also runs the acceptor, signals and timers.
  explicit Impl(const ServerOptions& options)
      : options_(options),
        contexts_(MakeContexts(options.io_threads)),
        io_(*contexts_[0]),
        acceptor_(io_),
        unix_acceptor_(io_),
        signals_(io_, SIGINT, SIGTERM),
        ttl_timer_(io_) {
    for (auto& c : contexts_) work_.push_back(asio::make_work_guard(*c));
  }

  ~Impl() {
    // Registrations go while the memory they cover (in the store) still exists;
    // queue pairs (in queued handlers) go with the io contexts, before the device.
    device_mr_.reset();
    arena_mr_.reset();
  }

  static std::vector<std::unique_ptr<asio::io_context>> MakeContexts(int n) {
    std::vector<std::unique_ptr<asio::io_context>> v;
    for (int i = 0; i < std::max(n, 1); ++i) v.push_back(std::make_unique<asio::io_context>(1));
    return v;
  }

  Status Init();

  // Who may connect, said once at start.
  void LogAuth();
  Status ListenUnix();
  Status Run();

  // One line each about the GPU (and the device tier on it) and the RDMA
  // hardware this daemon could use.
  void LogHardware();

  // Opens the RDMA device and registers the host arena with it once; clients
  // with a device then get one-sided transfers. Without one (or when this
  // fails) connections use tcp or local, and the log says why, once.
  void SetUpRdma(std::span<std::byte> arena, const device::DeviceArena* device_arena);
  void Stop();
  void Accept();
  void AcceptUnix();

  // A new connection: authenticated at once when no token is required (then
  // --max-connections applies here), else within the unauthenticated budget.
  void Admit(StreamSocket socket, PeerInfo peer);
  void ScheduleTtlSweep();
  void BeginShutdown();

  ServerOptions options_;
  // Before the io contexts: queue pairs in their pending handlers go first.
  std::unique_ptr<rdma::RdmaDevice> rdma_device_;
  std::unique_ptr<rdma::MemoryRegion> arena_mr_;
  std::unique_ptr<rdma::MemoryRegion> device_mr_;  // the device tier's arena, when registered
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  asio::io_context& io_;
  size_t next_context_ = 0;  // only touched by the accept handler chain
  tcp::acceptor acceptor_;
  asio::local::stream_protocol::acceptor unix_acceptor_;
  asio::signal_set signals_;
  asio::steady_timer ttl_timer_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  Metrics metrics_;
  std::unique_ptr<Store> store_;
  device::GpuProbe gpu_;      // probed once in Init
  std::string device_error_;  // why --device-memory could not be set up on a GPU
  Credentials credentials_;
  std::unique_ptr<NamespaceCounters> usage_;
  RateLimitedLog log_limit_;
  transport::ChoiceLog transport_log_;
  ConnectionRegistry registry_;
  ServiceContext ctx_{};
  std::unique_ptr<MetricsHttpServer> metrics_http_;
  std::unique_ptr<boost::asio::ssl::context> tls_context_;
  std::string listen_address_;
  std::string metrics_address_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> next_connection_id_{0};
};

}  // namespace kvstore::server
