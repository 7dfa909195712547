#include "kvstore/server/server.h"

#include <utility>  // before asio: Boost 1.74 Asio under C++20 needs std::exchange

#include <atomic>
#include <thread>

#include <prometheus/exposer.h>
#include <spdlog/spdlog.h>
#include <boost/asio.hpp>

#include "connection.h"
#include "connection_registry.h"
#include "kvstore/device/arena_registration.h"
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

  Status Init() {
    auto memory = MakeArenaMemory(options_.store.memory_bytes, options_.store.lock_memory);
    if (!memory.ok()) return memory.status();
    std::span<std::byte> arena = (*memory)->arena();
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
    // The device tier needs a GPU; without one (or when its memory cannot be
    // had) the daemon runs as without it and LogHardware says why, once.
    gpu_ = device::ProbeGpu();
    std::unique_ptr<DeviceMemory> device_memory;
    if (options_.store.device_memory_bytes > 0 && gpu_.available()) {
      auto made = MakeCudaDeviceMemory(options_.store.device_memory_bytes);
      if (made.ok()) {
        device_memory = std::move(made).value();
      } else {
        device_error_ = made.status().ToString();
      }
    }
    const device::DeviceArena* device_arena = device_memory ? device_memory->arena() : nullptr;
    store_ = std::make_unique<Store>(options_.store, std::move(memory).value(), std::move(spill),
                                     std::move(device_memory));
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
    ctx_.options = &options_;
    ctx_.store = store_.get();
    ctx_.metrics = &metrics_;
    ctx_.registry = &registry_;
    ctx_.version = kVersion;
    ctx_.local_transport = options_.local_transport;
    LogHardware();
    SetUpRdma(arena, device_arena);
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
      for (const auto& c : options_.extra_metrics) exposer_->RegisterCollectable(c);
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

  // One line each about the GPU (and the device tier on it) and the RDMA
  // hardware this daemon could use.
  void LogHardware() {
    const uint64_t asked = options_.store.device_memory_bytes;
    if (store_->has_device_tier()) {
      spdlog::info(
          "gpu: {}; device tier: {} in {}; committed values go there first and move to the "
          "host tier above {:.0f}% full",
          gpu_.reason, FormatSize(asked), store_->DescribeDevice(),
          options_.store.high_watermark * 100);
    } else if (asked == 0) {
      spdlog::info("gpu: {}; no device tier (--device-memory 0), values live in the host arena",
                   gpu_.reason);
    } else if (!gpu_.available()) {
      spdlog::warn(
          "gpu: {}; device tier absent although --device-memory {} was given: values live in "
          "the host arena (run on a machine with a GPU and its driver, or drop the flag)",
          gpu_.reason, FormatSize(asked));
    } else {
      spdlog::warn(
          "gpu: {}; device tier absent: --device-memory {} could not be set up: {}; values live "
          "in the host arena (lower --device-memory or free GPU memory)",
          gpu_.reason, FormatSize(asked), device_error_);
    }
  }

  // Opens the RDMA device and registers the host arena with it once; clients
  // with a device then get one-sided transfers. Without one (or when this
  // fails) connections use tcp or local, and the log says why, once.
  void SetUpRdma(std::span<std::byte> arena, const device::DeviceArena* device_arena) {
    std::string why;
    if (!rdma::RdmaDevicesPresent(&why)) {
      ctx_.rdma_unavailable = why;
      spdlog::info("rdma: {}", why);
      return;
    }
    auto device = rdma::RdmaDevice::Open();
    if (!device.ok()) {
      ctx_.rdma_unavailable = device.status().message();
      spdlog::warn("rdma: cannot open the device: {}; bulk transfers use tcp",
                   device.status().ToString());
      return;
    }
    auto mr = (*device)->RegisterMemory(arena.data(), arena.size());
    if (!mr.ok()) {
      ctx_.rdma_unavailable = "host arena registration failed: " + mr.status().message();
      spdlog::warn(
          "rdma: registering the {} host arena with {} failed: {}; bulk transfers use "
          "tcp (check `ulimit -l` / LimitMEMLOCK for the daemon)",
          FormatSize(arena.size()), (*device)->name(), mr.status().ToString());
      return;
    }
    rdma_device_ = std::move(device).value();
    arena_mr_ = std::move(mr).value();
    // The device tier's arena too (dmabuf, else peer memory), so queue pairs
    // can reach GPU memory; values in it are still staged to the host arena
    // before they are served.
    if (device_arena != nullptr) {
      auto reg = device::RegisterArena(*rdma_device_, *device_arena);
      if (reg.ok()) {
        spdlog::info("rdma: device-tier arena registered ({}{})",
                     reg->method == device::RegistrationMethod::kDmabuf ? "dmabuf" : "peer memory",
                     reg->note.empty() ? "" : ": " + reg->note);
        device_mr_ = std::move(reg->region);
      } else {
        spdlog::warn(
            "rdma: the device-tier arena could not be registered with {}: {}; its "
            "values reach clients through the host arena",
            rdma_device_->name(), reg.status().ToString());
      }
    }
    struct Range {
      const std::byte* base;
      size_t len;
      uint32_t lkey;
    };
    std::vector<Range> ranges{
        {static_cast<const std::byte*>(arena_mr_->addr()), arena_mr_->length(), arena_mr_->lkey()}};
    if (device_mr_) {
      ranges.push_back({static_cast<const std::byte*>(device_mr_->addr()), device_mr_->length(),
                        device_mr_->lkey()});
    }
    const size_t len = arena_mr_->length();
    ctx_.rdma_available = true;
    ctx_.rdma_device = rdma_device_.get();
    ctx_.rdma_local_lkey = [ranges](const void* p, size_t n) -> Result<uint32_t> {
      const auto* b = static_cast<const std::byte*>(p);
      for (const Range& r : ranges) {
        if (b >= r.base && n <= r.len && b - r.base <= static_cast<ptrdiff_t>(r.len - n)) {
          return r.lkey;
        }
      }
      return Status::InvalidArgument("rdma: buffer is outside every registered arena");
    };
    spdlog::info(
        "rdma: {} port {}, host arena of {} registered; clients with an RDMA device "
        "get one-sided transfers",
        rdma_device_->name(), rdma_device_->port(), FormatSize(len));
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
    if (options_.on_shutdown) options_.on_shutdown();  // e.g. leave the cluster first
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
  // Before the io contexts: queue pairs in their pending handlers go first.
  std::unique_ptr<rdma::RdmaDevice> rdma_device_;
  std::unique_ptr<rdma::MemoryRegion> arena_mr_;
  std::unique_ptr<rdma::MemoryRegion> device_mr_;  // the device tier's arena, when registered
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  asio::io_context& io_;
  size_t next_context_ = 0;  // only touched by the accept handler chain
  tcp::acceptor acceptor_;
  asio::signal_set signals_;
  asio::steady_timer ttl_timer_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  Metrics metrics_;
  std::unique_ptr<Store> store_;
  device::GpuProbe gpu_;      // probed once in Init
  std::string device_error_;  // why --device-memory could not be set up on a GPU
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
