#include "kvstore/server/server.h"

#include <utility>  // before asio: Boost 1.74 Asio under C++20 needs std::exchange

#include <atomic>
#include <thread>

#include <prometheus/exposer.h>
#include <spdlog/spdlog.h>
#include <boost/asio.hpp>

#include "connection.h"
#include "connection_registry.h"
#include "kvstore/device/gpu_probe.h"
#include "kvstore/rdma/device.h"
#include "kvstore/server/metrics.h"
#include "kvstore/server/store.h"
#include "kvstore/tiers/rocksdb_spill.h"
#include "kvstore/units.h"

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
        signals_(io_, SIGINT, SIGTERM),
        ttl_timer_(io_) {
    for (auto& c : contexts_) work_.push_back(asio::make_work_guard(*c));
  }

  static std::vector<std::unique_ptr<asio::io_context>> MakeContexts(int n) {
    std::vector<std::unique_ptr<asio::io_context>> v;
    for (int i = 0; i < std::max(n, 1); ++i) v.push_back(std::make_unique<asio::io_context>(1));
    return v;
  }

  Status Init() {
    auto memory = MakeArenaMemory(options_.store.memory_bytes, options_.store.lock_memory);
    if (!memory.ok()) return memory.status();
    std::unique_ptr<tiers::SpillStore> spill;
    if (options_.store.spill_bytes > 0) {
      tiers::SpillOptions so;
      so.dir = options_.store.data_dir + "/spill";
      so.capacity_bytes = options_.store.spill_bytes;
      auto opened = tiers::RocksDbSpill::Open(so);
      if (!opened.ok()) {
        return opened.status().WithContext("opening the spill tier in " + so.dir +
                                           " (check the directory's permissions and disk)");
      }
      spill = std::move(opened).value();
    }
    bool has_spill = spill != nullptr;
    store_ = std::make_unique<Store>(options_.store, std::move(memory).value(), std::move(spill));
    auto found = store_->Open();
    if (!found.ok()) return found.status();
    spdlog::info("host tier: {} in {}", FormatSize(options_.store.memory_bytes),
                 store_->DescribeMemory());
    if (has_spill) {
      spdlog::info(
          "spill tier: {} in {}/spill; {} entries found from before (warm restart); "
          "SIGTERM {}",
          FormatSize(options_.store.spill_bytes), options_.store.data_dir, *found,
          options_.store.flush_on_shutdown ? "flushes the host tier to spill"
                                           : "does not flush (--no-flush-on-shutdown)");
    } else {
      spdlog::info("spill tier: off (--spill 0); what is in memory is lost on restart");
    }
    ctx_ = {&options_, store_.get(), &metrics_, &registry_, kVersion};
    LogHardware();
    metrics_.AttachStore(store_.get());

    std::string host;
    uint16_t port = 0;
    KVSTORE_RETURN_IF_ERROR(SplitHostPort(options_.listen, &host, &port).WithContext("--listen"));
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(host, ec);
    if (ec) return Status::InvalidArgument("--listen: '" + host + "' is not an IP address");
    tcp::endpoint ep(addr, port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status::Unavailable("cannot listen on " + options_.listen + ": " + ec.message() +
                                 " (another kvstored running? pick another --listen port)");
    }
    auto bound = acceptor_.local_endpoint();
    listen_address_ = bound.address().to_string() + ":" + std::to_string(bound.port());

    if (!options_.metrics.empty()) {
      try {
        exposer_ = std::make_unique<prometheus::Exposer>(options_.metrics, 1);
      } catch (const std::exception& e) {
        return Status::Unavailable("cannot serve metrics on " + options_.metrics + ": " + e.what() +
                                   " (pick another --metrics address, or '' to disable)");
      }
      exposer_->RegisterCollectable(metrics_.registry());
      exposer_->RegisterCollectable(metrics_.store_collector());
      std::string mhost;
      uint16_t mport = 0;
      (void)SplitHostPort(options_.metrics, &mhost, &mport);
      auto ports = exposer_->GetListeningPorts();
      metrics_address_ = mhost + ":" + std::to_string(ports.empty() ? mport : ports.front());
    }
    return Status::Ok();
  }

  Status Run() {
    Accept();
    signals_.async_wait([this](boost::system::error_code ec, int sig) {
      if (ec) return;
      spdlog::info("received {}; shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      BeginShutdown();
    });
    ScheduleTtlSweep();
    spdlog::info("kvstored {} serving on {} ({}), {} io threads, ttl {}", kVersion, listen_address_,
                 metrics_address_.empty() ? "metrics off"
                                          : "metrics on http://" + metrics_address_ + "/metrics",
                 options_.io_threads, FormatDuration(options_.store.default_ttl));
    std::vector<std::thread> threads;
    for (size_t i = 1; i < contexts_.size(); ++i) {
      threads.emplace_back([this, i] { contexts_[i]->run(); });
    }
    io_.run();
    for (auto& t : threads) t.join();
    if (exposer_stopper_.joinable()) exposer_stopper_.join();
    exposer_.reset();
    Status closed = store_->Close();
    spdlog::info("kvstored stopped");
    return closed;
  }

  // One line each about the GPU and RDMA hardware this daemon could use.
  void LogHardware() {
    device::GpuProbe gpu = device::ProbeGpu();
    if (gpu.available()) {
      spdlog::info(
          "gpu: {} device(s) found; the device tier is not enabled in this build "
          "(host arena serves all values)",
          gpu.device_count);
    } else {
      spdlog::info("gpu: {}; no device tier, values live in the host arena", gpu.reason);
    }
    std::string why;
    if (rdma::RdmaDevicesPresent(&why)) {
      ctx_.rdma_available = true;
      spdlog::info("rdma: device present; bulk transfers still use TCP in this version");
    } else {
      ctx_.rdma_unavailable = why;
      spdlog::info("rdma: {}", why);
    }
  }

  void Stop() {
    asio::post(io_, [this] { BeginShutdown(); });
  }

  void Accept() {
    asio::io_context& home = *contexts_[next_context_++ % contexts_.size()];
    acceptor_.async_accept(
        asio::make_strand(home), [this](boost::system::error_code ec, tcp::socket socket) {
          if (ec) {
            if (ec == asio::error::operation_aborted || stopping_) return;
            spdlog::warn("accept on {} failed: {}", listen_address_, ec.message());
          } else if (registry_.size() >= options_.max_connections) {
            metrics_.ProtocolError("too_many_connections");
            spdlog::warn("refusing connection: {} connections open (limit --max-connections {})",
                         registry_.size(), options_.max_connections);
          } else {
            auto c = std::make_shared<Connection>(std::move(socket), &ctx_, ++next_connection_id_);
            registry_.Add(c->id(), c);
            c->Start();
          }
          if (!stopping_) Accept();
        });
  }

  void ScheduleTtlSweep() {
    ttl_timer_.expires_after(std::chrono::seconds(1));
    ttl_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec || stopping_) return;
      size_t n = store_->ExpireTtl();
      if (n > 0) spdlog::info("ttl: dropped {} entries nobody took in time", n);
      ScheduleTtlSweep();
    });
  }

  void BeginShutdown() {
    if (stopping_.exchange(true)) return;
    // The metrics server takes about a second to stop (its poll loop): stop it
    // while connections drain instead of after.
    if (exposer_) exposer_stopper_ = std::thread([this] { exposer_.reset(); });
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    signals_.cancel(ignored);
    ttl_timer_.cancel();
    store_->FailAllWaiters("kvstored is shutting down; reconnect to another store or retry later");
    for (auto& c : registry_.Snapshot()) c->Shutdown(std::chrono::milliseconds(2000));
    work_.clear();
  }

  ServerOptions options_;
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  asio::io_context& io_;
  size_t next_context_ = 0;  // only touched by the accept handler chain
  tcp::acceptor acceptor_;
  asio::signal_set signals_;
  asio::steady_timer ttl_timer_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  Metrics metrics_;
  std::unique_ptr<Store> store_;
  ConnectionRegistry registry_;
  ServiceContext ctx_{};
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::thread exposer_stopper_;
  std::string listen_address_;
  std::string metrics_address_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> next_connection_id_{0};
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() = default;

Result<std::unique_ptr<Server>> Server::Create(const ServerOptions& options) {
  auto impl = std::make_unique<Impl>(options);
  KVSTORE_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Status Server::Run() { return impl_->Run(); }
void Server::Stop() { impl_->Stop(); }
std::string Server::listen_address() const { return impl_->listen_address_; }
std::string Server::metrics_address() const { return impl_->metrics_address_; }

}  // namespace kvstore::server
