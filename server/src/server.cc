#include "kvstore/server/server.h"

#include <utility>  // before asio: Boost 1.74 Asio under C++20 needs std::exchange

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <random>
#include <thread>

#include <prometheus/collectable.h>
#include <spdlog/spdlog.h>
#include <boost/asio.hpp>

#include "auth.h"
#include "connection.h"
#include "connection_registry.h"
#include "kvstore/device/arena_registration.h"
#include "kvstore/device/gpu_probe.h"
#include "kvstore/rdma/device.h"
#include "kvstore/server/metrics.h"
#include "kvstore/server/store.h"
#include "kvstore/tiers/rocksdb_spill.h"
#include "kvstore/units.h"
#include "metrics_http.h"
#include "tcp_listener.h"
#include "tls.h"

namespace kvstore::server {

namespace {

std::string RandomInstanceId() {
  std::random_device rd;
  std::string id(16, '\0');
  for (size_t i = 0; i < id.size(); i += 4) {
    uint32_t v = rd();
    std::memcpy(id.data() + i, &v, 4);
  }
  return id;
}

// Per-namespace gauges at scrape time: what each tenant namespace holds
// (from the store) and its open connections and waiting drop_selects.
class NamespaceCollector final : public prometheus::Collectable {
 public:
  NamespaceCollector(Store* store, const Credentials* creds, const NamespaceCounters* counters)
      : store_(store), creds_(creds), counters_(counters) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    namespace p = prometheus;
    auto family = [](const char* name, const char* help) {
      p::MetricFamily f;
      f.name = name;
      f.help = help;
      f.type = p::MetricType::Gauge;
      return f;
    };
    auto add = [](p::MetricFamily& f, double v, std::vector<p::ClientMetric::Label> labels) {
      p::ClientMetric m;
      m.label = std::move(labels);
      m.gauge.value = v;
      f.metric.push_back(std::move(m));
    };
    auto entries = family("kvstore_namespace_entries", "Entries a namespace holds, every tier.");
    auto bytes =
        family("kvstore_namespace_stored_bytes", "Value bytes a namespace holds, by tier.");
    auto conns = family("kvstore_namespace_connections", "Authenticated connections open now.");
    auto waiters = family("kvstore_namespace_waiters", "drop_selects of a namespace waiting now.");
    for (NamespaceIndex i = 0; i < creds_->namespaces().size(); ++i) {
      const std::string& name = creds_->NamespaceName(i);
      NamespaceUsage u = store_->NamespaceUsageOf(creds_->StoreId(i));
      add(entries, static_cast<double>(u.entries), {{"namespace", name}});
      add(bytes, static_cast<double>(u.host_bytes), {{"namespace", name}, {"tier", "host"}});
      add(bytes, static_cast<double>(u.device_bytes), {{"namespace", name}, {"tier", "device"}});
      add(bytes, static_cast<double>(u.spill_bytes), {{"namespace", name}, {"tier", "spill"}});
      add(conns, static_cast<double>(counters_->connections[i].load()), {{"namespace", name}});
      add(waiters, static_cast<double>(counters_->waiters[i].load()), {{"namespace", name}});
    }
    return {std::move(entries), std::move(bytes), std::move(conns), std::move(waiters)};
  }

 private:
  Store* store_;
  const Credentials* creds_;
  const NamespaceCounters* counters_;
};

}  // namespace

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
        // A held data dir already says who holds it and what to do; other
        // failures are the directory's or the disk's.
        const bool held = opened.status().code() == StatusCode::kUnavailable;
        return opened.status().WithContext(
            "opening the spill tier in " + so.dir +
            (held ? std::string() : " (check the directory's permissions and disk)"));
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
    if (!options_.tokens_file.empty()) {
      auto loaded = Credentials::LoadFile(options_.tokens_file);
      if (!loaded.ok()) return loaded.status().WithContext("--tokens-file");
      credentials_ = std::move(loaded).value();
      if (!options_.token.empty()) {
        return Status::InvalidArgument(
            "--token-file and --tokens-file both given: put the shared token in the tokens file "
            "as an admin tenant");
      }
    } else if (!options_.token.empty()) {
      credentials_ = Credentials::SingleToken(options_.token);
    }
    usage_ = std::make_unique<NamespaceCounters>(credentials_.namespaces().size());
    for (NamespaceIndex i = 0; i < credentials_.namespaces().size(); ++i) {
      const NamespaceLimits& l = credentials_.quota(i);
      if (l.max_bytes || l.max_device_bytes || l.max_spill_bytes || l.max_entries) {
        NamespaceQuota q;
        q.host_bytes = l.max_bytes;
        q.device_bytes = l.max_device_bytes;
        q.spill_bytes = l.max_spill_bytes;
        q.entries = l.max_entries;
        // waiters: checked per connection (Connection::CheckWaiterQuota)
        store_->SetNamespaceQuota(credentials_.StoreId(i), q);
      }
    }
    ctx_.credentials = &credentials_;
    ctx_.usage = usage_.get();
    ctx_.log_limit = &log_limit_;
    ctx_.transport_log = &transport_log_;
    ctx_.instance_id = RandomInstanceId();
    registry_.SetLimits(options_.max_unauthenticated, options_.max_unauthenticated_per_peer);
    LogAuth();
    LogHardware();
    SetUpRdma(arena, device_arena);
    metrics_.AttachStore(store_.get());

    KVSTORE_RETURN_IF_ERROR(ListenTcp(acceptor_, options_.listen, "--listen",
                                      " (another kvstored running? pick another --listen port)",
                                      &listen_address_));

    KVSTORE_RETURN_IF_ERROR(ListenUnix());
    if (!options_.tls_cert.empty()) {
      TlsOptions tls{options_.tls_cert, options_.tls_key, options_.tls_ca};
      auto ctx = MakeServerTlsContext(tls);
      if (!ctx.ok()) return ctx.status();
      tls_context_ = std::move(ctx).value();
      spdlog::info("tls: TCP clients speak TLS ({}){}", options_.tls_cert,
                   options_.tls_ca.empty() ? "" : "; client certificates required (--tls-ca)");
    }

    if (!options_.metrics.empty()) {
      MetricsHttpServer::Collectables collectables{metrics_.registry(), metrics_.store_collector()};
      if (credentials_.required()) {
        collectables.push_back(
            std::make_shared<NamespaceCollector>(store_.get(), &credentials_, usage_.get()));
      }
      for (const auto& c : options_.extra_metrics) collectables.push_back(c);
      metrics_http_ = std::make_unique<MetricsHttpServer>(io_, std::move(collectables));
      KVSTORE_RETURN_IF_ERROR(metrics_http_->Listen(options_.metrics));
      metrics_address_ = metrics_http_->address();
    }
    return Status::Ok();
  }

  // Who may connect, said once at start.
  void LogAuth() {
    if (!credentials_.required()) {
      spdlog::warn(
          "auth: no --tokens-file or --token-file: any peer that can connect acts as admin of "
          "namespace 'default' (fine on loopback for one trusted user; not beyond)");
      return;
    }
    std::string names;
    for (const Tenant& t : credentials_.tenants()) {
      names += (names.empty() ? "" : ", ") + t.name + " (" + credentials_.NamespaceName(t.ns) +
               ", " + std::string(RoleName(t.role)) + ")";
    }
    spdlog::info(
        "auth: {} tenant(s): {}; hello within {} ms, at most {} unauthenticated connections ({} "
        "per peer)",
        credentials_.tenants().size(), names, options_.hello_timeout.count(),
        options_.max_unauthenticated, options_.max_unauthenticated_per_peer);
  }

  Status ListenUnix() {
    if (options_.unix_socket.empty()) return Status::Ok();
    const std::string& path = options_.unix_socket;
    if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
      return Status::InvalidArgument("--unix-socket: '" + path + "' is longer than " +
                                     std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                                     " bytes; pick a shorter path");
    }
    std::error_code fec;
    // The data dir is the daemon's own: the default socket inside it needs no
    // spill tier to have created it first.
    const auto parent = std::filesystem::path(path).parent_path();
    if (!options_.store.data_dir.empty() &&
        parent == std::filesystem::path(options_.store.data_dir)) {
      std::filesystem::create_directories(parent, fec);
    }
    boost::system::error_code ec;
    asio::local::stream_protocol::endpoint ep(path);
    // A socket file left by a daemon that died is replaced; a live daemon's
    // socket and anything that is not a socket are not touched.
    auto st = std::filesystem::symlink_status(path, fec);
    if (!fec && std::filesystem::exists(st)) {
      if (!std::filesystem::is_socket(st)) {
        return Status::InvalidArgument("--unix-socket: " + path +
                                       " exists and is not a socket; remove it or pick another "
                                       "path");
      }
      asio::local::stream_protocol::socket probe(io_);
      probe.connect(ep, ec);
      if (!ec) {
        return Status::Unavailable("--unix-socket: another kvstored is serving " + path +
                                   "; stop it or give this daemon another --unix-socket or "
                                   "--data-dir");
      }
      ec.clear();
      std::filesystem::remove(path, fec);
    }
    unix_acceptor_.open(ep.protocol(), ec);
    if (!ec) unix_acceptor_.bind(ep, ec);
    if (!ec) unix_acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status::Unavailable("cannot listen on the Unix socket " + path + ": " + ec.message() +
                                 " (check the directory exists and is writable, or pass "
                                 "--unix-socket '' to run without it)");
    }
    ::chmod(path.c_str(), options_.unix_socket_mode);
    ctx_.unix_socket = std::filesystem::absolute(path, fec).string();
    if (fec) ctx_.unix_socket = path;
    return Status::Ok();
  }

  Status Run() {
    Accept();
    if (unix_acceptor_.is_open()) AcceptUnix();
    if (metrics_http_) metrics_http_->Start();
    signals_.async_wait([this](boost::system::error_code ec, int sig) {
      if (ec) return;
      spdlog::info("received {}; shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      BeginShutdown();
    });
    ScheduleTtlSweep();
    spdlog::info("kvstored {} serving on {}{} ({}), {} io threads, ttl {}", kVersion,
                 listen_address_, ctx_.unix_socket.empty() ? "" : " and unix:" + ctx_.unix_socket,
                 metrics_address_.empty() ? "metrics off"
                                          : "metrics on http://" + metrics_address_ + "/metrics",
                 options_.io_threads, FormatDuration(options_.store.default_ttl));
    std::vector<std::thread> threads;
    for (size_t i = 1; i < contexts_.size(); ++i) {
      threads.emplace_back([this, i] { contexts_[i]->run(); });
    }
    io_.run();
    for (auto& t : threads) t.join();
    metrics_http_.reset();
    if (!ctx_.unix_socket.empty()) ::unlink(ctx_.unix_socket.c_str());
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
    acceptor_.async_accept(asio::make_strand(home), [this](boost::system::error_code ec,
                                                           tcp::socket socket) {
      if (ec) {
        if (ec == asio::error::operation_aborted || stopping_) return;
        log_limit_.Warn("accept", "accept on {} failed: {}", listen_address_, ec.message());
      } else {
        boost::system::error_code pec;
        auto ep = socket.remote_endpoint(pec);
        PeerInfo peer;
        peer.key = pec ? "unknown" : ep.address().to_string();
        peer.display = pec ? "unknown peer" : peer.key + ":" + std::to_string(ep.port());
        if (tls_context_) {
          peer.tls = true;
          peer.display += " (tls)";
          std::string who = peer.display;
          StartTlsRelay(
              std::move(socket), *tls_context_, options_.hello_timeout,
              [this, peer](StreamSocket plain) mutable {
                Admit(std::move(plain), std::move(peer));
              },
              [this, who](const std::string& why) {
                metrics_.ProtocolError("tls_handshake");
                log_limit_.Warn("tls_handshake", "connection from {}: {}; closed", who, why);
              });
        } else {
          auto exec = socket.get_executor();
          StreamSocket s(exec, asio::generic::stream_protocol(ep.protocol().family(), IPPROTO_TCP),
                         socket.release());
          Admit(std::move(s), std::move(peer));
        }
      }
      if (!stopping_) Accept();
    });
  }

  void AcceptUnix() {
    asio::io_context& home = *contexts_[next_context_++ % contexts_.size()];
    unix_acceptor_.async_accept(
        asio::make_strand(home),
        [this](boost::system::error_code ec, asio::local::stream_protocol::socket socket) {
          if (ec) {
            if (ec == asio::error::operation_aborted || stopping_) return;
            log_limit_.Warn("accept", "accept on {} failed: {}", ctx_.unix_socket, ec.message());
          } else {
            ucred cred{};
            socklen_t len = sizeof(cred);
            PeerInfo peer;
            peer.is_unix = true;
            if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
              log_limit_.Warn("peercred", "unix connection without peer credentials; closed");
            } else {
              peer.uid = cred.uid;
              peer.key = "uid:" + std::to_string(cred.uid);
              peer.display =
                  "unix uid " + std::to_string(cred.uid) + " pid " + std::to_string(cred.pid);
              const auto& allow = options_.unix_allow_uids;
              if (!allow.empty() &&
                  std::find(allow.begin(), allow.end(), cred.uid) == allow.end()) {
                metrics_.ProtocolError("uid_refused");
                log_limit_.Warn("uid_refused", "refusing {}: uid {} is not in --unix-allow-uid",
                                peer.display, cred.uid);
              } else {
                auto exec = socket.get_executor();
                StreamSocket s(exec, asio::generic::stream_protocol(AF_UNIX, 0), socket.release());
                Admit(std::move(s), std::move(peer));
              }
            }
          }
          if (!stopping_) AcceptUnix();
        });
  }

  // A new connection: authenticated at once when no token is required (then
  // --max-connections applies here), else within the unauthenticated budget.
  void Admit(StreamSocket socket, PeerInfo peer) {
    if (!credentials_.required() && registry_.size() >= options_.max_connections) {
      metrics_.ProtocolError("too_many_connections");
      log_limit_.Warn("too_many_connections",
                      "refusing connection from {}: {} connections open (limit "
                      "--max-connections {})",
                      peer.display, registry_.size(), options_.max_connections);
      return;
    }
    std::string key = peer.key;
    auto c = std::make_shared<Connection>(std::move(socket), &ctx_, ++next_connection_id_,
                                          std::move(peer));
    if (credentials_.required()) {
      for (auto& old : registry_.AddUnauthenticated(c->id(), c, key)) {
        old->Evict("its place was needed by a newer connection before it sent hello");
      }
    } else {
      registry_.Add(c->id(), c);
    }
    c->Start();
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
    if (metrics_http_) metrics_http_->Stop();
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    unix_acceptor_.close(ignored);
    signals_.cancel(ignored);
    ttl_timer_.cancel();
    store_->FailAllWaiters("kvstored is shutting down; reconnect to another store or retry later");
    for (auto& c : registry_.Snapshot()) c->Shutdown(options_.shutdown_grace);
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
