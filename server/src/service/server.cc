#include "kvstore/server/server.h"

#include <utility>  // before asio: Boost 1.74 Asio under C++20 needs std::exchange

#include <unistd.h>

#include <atomic>
#include <random>
#include <thread>

#include <prometheus/collectable.h>
#include <spdlog/spdlog.h>
#include <boost/asio.hpp>

#include "auth.h"
#include "kvstore/device/gpu_probe.h"
#include "kvstore/server/metrics.h"
#include "kvstore/server/store.h"
#include "kvstore/tiers/rocksdb_spill.h"
#include "kvstore/units.h"
#include "metrics_http.h"
#include "server_impl.h"
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

Status Server::Impl::Init() {
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

void Server::Impl::LogAuth() {
  if (!credentials_.required()) {
    spdlog::warn(
        "auth: no --tokens-file or --token-file: any peer that can connect acts as admin of "
        "namespace 'default' (fine on loopback for one trusted user; not beyond)");
    return;
  }
  std::string names;
  for (const Tenant& t : credentials_.tenants()) {
    names += (names.empty() ? "" : ", ") + t.name + " (" + credentials_.NamespaceName(t.ns) + ", " +
             std::string(RoleName(t.role)) + ")";
  }
  spdlog::info(
      "auth: {} tenant(s): {}; hello within {} ms, at most {} unauthenticated connections ({} "
      "per peer)",
      credentials_.tenants().size(), names, options_.hello_timeout.count(),
      options_.max_unauthenticated, options_.max_unauthenticated_per_peer);
}

Status Server::Impl::Run() {
  Accept();
  if (unix_acceptor_.is_open()) AcceptUnix();
  if (metrics_http_) metrics_http_->Start();
  signals_.async_wait([this](boost::system::error_code ec, int sig) {
    if (ec) return;
    spdlog::info("received {}; shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    BeginShutdown();
  });
  ScheduleTtlSweep();
  spdlog::info("kvstored {} serving on {}{} ({}), {} io threads, ttl {}", kVersion, listen_address_,
               ctx_.unix_socket.empty() ? "" : " and unix:" + ctx_.unix_socket,
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

void Server::Impl::Stop() {
  asio::post(io_, [this] { BeginShutdown(); });
}

void Server::Impl::ScheduleTtlSweep() {
  ttl_timer_.expires_after(std::chrono::seconds(1));
  ttl_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopping_) return;
    size_t n = store_->ExpireTtl();
    if (n > 0) spdlog::info("ttl: dropped {} entries nobody took in time", n);
    ScheduleTtlSweep();
  });
}

void Server::Impl::BeginShutdown() {
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
