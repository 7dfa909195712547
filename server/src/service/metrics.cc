#include "kvstore/server/metrics.h"

#include "kvstore/server/store.h"

namespace kvstore::server {

namespace p = prometheus;

std::string_view OpName(Op op) {
  switch (op) {
    case Op::kHello:
      return "hello";
    case Op::kInsert:
      return "insert";
    case Op::kSelect:
      return "select";
    case Op::kDropSelect:
      return "drop_select";
    case Op::kMatchPrefix:
      return "match_prefix";
    case Op::kRemove:
      return "remove";
    case Op::kStats:
      return "stats";
    case Op::kList:
      return "list";
    case Op::kPing:
      return "ping";
    case Op::kAck:
      return "ack";
    case Op::kRetain:
      return "retain";
    case Op::kRegion:
      return "region";
    case Op::kInsertMany:
      return "insert_many";
    case Op::kMalformed:
      return "malformed";
    case Op::kUnknown:
      return "unknown";
    case Op::kCount_:
      break;
  }
  return "unknown";
}

namespace {

// 50 us .. ~100 s, doubling.
p::Histogram::BucketBoundaries LatencyBuckets() {
  p::Histogram::BucketBoundaries b;
  for (double v = 50e-6; v < 120; v *= 2) b.push_back(v);
  return b;
}

std::string SnakeCode(StatusCode c) {
  switch (c) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kNotFound:
      return "not_found";
    case StatusCode::kTimeout:
      return "timeout";
    case StatusCode::kResourceExhausted:
      return "resource_exhausted";
    case StatusCode::kInvalidArgument:
      return "invalid_argument";
    case StatusCode::kUnavailable:
      return "unavailable";
    case StatusCode::kDataLoss:
      return "data_loss";
    case StatusCode::kPermissionDenied:
      return "permission_denied";
    case StatusCode::kInternal:
      return "internal";
  }
  return "unknown";
}

p::MetricFamily Family(std::string name, std::string help, p::MetricType type) {
  p::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

void AddValue(p::MetricFamily* f, double v, std::vector<p::ClientMetric::Label> labels = {}) {
  p::ClientMetric m;
  m.label = std::move(labels);
  if (f->type == p::MetricType::Counter)
    m.counter.value = v;
  else
    m.gauge.value = v;
  f->metric.push_back(std::move(m));
}

// Reads the store at scrape time.
class StoreCollector final : public p::Collectable {
 public:
  explicit StoreCollector(Store* store) : store_(store) {}

  std::vector<p::MetricFamily> Collect() const override {
    StoreStats s = store_->Stats();
    const StoreCounters& c = store_->counters();
    std::vector<p::MetricFamily> out;
    auto entries =
        Family("kvstore_entries", "Committed entries held, by tier.", p::MetricType::Gauge);
    auto bytes = Family("kvstore_stored_bytes", "Value bytes held, by tier.", p::MetricType::Gauge);
    auto cap = Family("kvstore_capacity_bytes", "Capacity of each tier.", p::MetricType::Gauge);
    auto used =
        Family("kvstore_used_bytes", "Bytes taken in each tier, allocator rounding included.",
               p::MetricType::Gauge);
    for (const auto& t : s.tiers) {
      std::vector<p::ClientMetric::Label> l{{"tier", std::string(TierName(t.tier))}};
      AddValue(&entries, static_cast<double>(t.entries), l);
      AddValue(&bytes, static_cast<double>(t.bytes), l);
      AddValue(&cap, static_cast<double>(t.capacity_bytes), l);
      AddValue(&used, static_cast<double>(t.used_bytes), l);
    }
    out.push_back(std::move(entries));
    out.push_back(std::move(bytes));
    out.push_back(std::move(cap));
    out.push_back(std::move(used));
    auto frag = Family("kvstore_host_fragmentation_ratio",
                       "1 - value bytes / allocated bytes in the host tier.", p::MetricType::Gauge);
    AddValue(&frag, s.fragmentation);
    out.push_back(std::move(frag));
    const Store::IndexMemory im = store_->IndexMemoryStats();
    auto index = Family("kvstore_index_bytes",
                        "Daemon memory of the index beside the values, by part: pooled entries "
                        "(key and metadata), the hash table, the TTL buckets.",
                        p::MetricType::Gauge);
    AddValue(&index, static_cast<double>(im.entry_bytes), {{"part", "entries"}});
    AddValue(&index, static_cast<double>(im.table_bytes), {{"part", "table"}});
    AddValue(&index, static_cast<double>(im.ttl_bytes), {{"part", "ttl"}});
    out.push_back(std::move(index));
    auto per_entry =
        Family("kvstore_index_bytes_per_entry",
               "kvstore_index_bytes summed over its parts / entries held.", p::MetricType::Gauge);
    AddValue(&per_entry, im.bytes_per_entry());
    out.push_back(std::move(per_entry));
    auto waiters = Family("kvstore_waiters", "drop_select calls blocked waiting for their keys.",
                          p::MetricType::Gauge);
    AddValue(&waiters, static_cast<double>(s.waiters));
    out.push_back(std::move(waiters));
    auto counter = [&](const char* name, const char* help, uint64_t v) {
      auto f = Family(name, help, p::MetricType::Counter);
      AddValue(&f, static_cast<double>(v));
      out.push_back(std::move(f));
    };
    counter("kvstore_inserts_total", "Entries committed.", c.inserts.load());
    counter("kvstore_ttl_expired_total",
            "Entries dropped because nobody took them before their TTL.", c.ttl_expired.load());
    counter("kvstore_evictions_total", "Entries demoted from the host tier to spill.",
            c.evictions.load());
    counter("kvstore_promotions_total", "Entries read back from spill into the host tier.",
            c.promotions.load());
    counter("kvstore_refused_inserts_total", "Inserts refused because every tier was full.",
            c.refused_inserts.load());
    counter("kvstore_checksum_failures_total",
            "Values whose bytes did not match their checksum (in transit or on disk).",
            c.checksum_failures.load());
    counter("kvstore_spill_write_bytes_total", "Value bytes written to the spill tier by demotion.",
            c.spill_write_bytes.load());
    counter("kvstore_spill_read_bytes_total", "Value bytes read back from the spill tier.",
            c.spill_read_bytes.load());
    auto seconds = [&](const char* name, const char* help, uint64_t micros) {
      auto f = Family(name, help, p::MetricType::Counter);
      AddValue(&f, static_cast<double>(micros) / 1e6);
      out.push_back(std::move(f));
    };
    seconds("kvstore_spill_write_seconds_total",
            "Time spent writing demoted values to spill (divide by demotions for latency).",
            c.spill_write_micros.load());
    seconds("kvstore_spill_read_seconds_total",
            "Time spent reading promoted values from spill (divide by promotions for latency).",
            c.spill_read_micros.load());
    counter("kvstore_spill_errors_total", "Spill writes, reads or deletes that failed.",
            c.spill_errors.load());
    counter("kvstore_inline_demotions_total",
            "Inserts that found the host tier full and demoted entries before they could go on.",
            c.inline_demotions.load());
    counter("kvstore_redeliveries_total",
            "drop_select deliveries that failed and went back to the store.",
            c.redeliveries.load());
    counter("kvstore_device_admissions_total",
            "Committed values copied into the device (GPU) tier.", c.device_admissions.load());
    counter("kvstore_device_demotions_total",
            "Entries moved from the device tier to the host tier to make room.",
            c.device_demotions.load());
    counter("kvstore_staged_transfers_total",
            "Device-tier entries copied into host memory to be sent (select, drop_select).",
            c.staged_transfers.load());
    counter("kvstore_device_errors_total", "Copies to or from the device tier that failed.",
            c.device_errors.load());
    return out;
  }

 private:
  Store* store_;
};

}  // namespace

Metrics::Metrics() : registry_(std::make_shared<p::Registry>()) {
  requests_ = &p::BuildCounter()
                   .Name("kvstore_requests_total")
                   .Help("Requests served, by operation and result.")
                   .Register(*registry_);
  latency_ =
      &p::BuildHistogram()
           .Name("kvstore_request_duration_seconds")
           .Help("Time from a request's arrival to its reply (drop_select includes waiting).")
           .Register(*registry_);
  for (size_t i = 0; i < kOps; ++i) {
    latency_by_op_[i] =
        &latency_->Add({{"op", std::string(OpName(static_cast<Op>(i)))}}, LatencyBuckets());
  }
  wait_ = &p::BuildHistogram()
               .Name("kvstore_drop_select_wait_seconds")
               .Help("Time a drop_select waited for its keys to be committed.")
               .Register(*registry_)
               .Add({}, LatencyBuckets());
  protocol_errors_ = &p::BuildCounter()
                          .Name("kvstore_protocol_errors_total")
                          .Help("Malformed or refused frames from clients, by reason.")
                          .Register(*registry_);
  transports_ = &p::BuildCounter()
                     .Name("kvstore_transport_connections_total")
                     .Help("Connections by the bulk transport settled at hello (tcp, local, rdma).")
                     .Register(*registry_);
  one_sided_ = &p::BuildCounter()
                    .Name("kvstore_one_sided_transfers_total")
                    .Help(
                        "Values the store pulled (insert) or pushed (select) itself, by "
                        "transport and result.")
                    .Register(*registry_);
  quota_refusals_ = &p::BuildCounter()
                         .Name("kvstore_quota_refusals_total")
                         .Help(
                             "Requests refused because a namespace was at a quota, by "
                             "namespace and quota.")
                         .Register(*registry_);
  limit_refusals_ = &p::BuildCounter()
                         .Name("kvstore_limit_refusals_total")
                         .Help(
                             "Requests refused because the daemon was at a global limit "
                             "(waiters, keys_per_request, pending_bytes).")
                         .Register(*registry_);
  namespace_requests_ = &p::BuildCounter()
                             .Name("kvstore_namespace_requests_total")
                             .Help("Requests of tenants, by namespace, operation and result.")
                             .Register(*registry_);
  bytes_in_ = &p::BuildCounter()
                   .Name("kvstore_received_bytes_total")
                   .Help("Value bytes received from clients.")
                   .Register(*registry_)
                   .Add({});
  bytes_out_ = &p::BuildCounter()
                    .Name("kvstore_sent_bytes_total")
                    .Help("Value bytes sent to clients.")
                    .Register(*registry_)
                    .Add({});
  connections_gauge_ = &p::BuildGauge()
                            .Name("kvstore_connected_clients")
                            .Help("Client connections open now.")
                            .Register(*registry_)
                            .Add({});
  connections_total_ = &p::BuildCounter()
                            .Name("kvstore_connections_total")
                            .Help("Client connections accepted.")
                            .Register(*registry_)
                            .Add({});
}

void Metrics::CountRequest(Op op, StatusCode result, double seconds) {
  size_t o = static_cast<size_t>(op), c = static_cast<size_t>(result);
  if (o >= kOps || c >= kCodes) return;
  p::Counter* counter = by_op_code_[o][c].load(std::memory_order_acquire);
  if (counter == nullptr) {
    std::lock_guard lock(mu_);
    counter = &requests_->Add({{"op", std::string(OpName(op))}, {"result", SnakeCode(result)}});
    by_op_code_[o][c].store(counter, std::memory_order_release);
  }
  counter->Increment();
  latency_by_op_[o]->Observe(seconds);
}

void Metrics::ObserveWait(double seconds) { wait_->Observe(seconds); }

void Metrics::ProtocolError(std::string_view reason) {
  std::lock_guard lock(mu_);
  protocol_errors_->Add({{"reason", std::string(reason)}}).Increment();
}

void Metrics::TransportChosen(std::string_view transport) {
  std::lock_guard lock(mu_);
  transports_->Add({{"transport", std::string(transport)}}).Increment();
}

void Metrics::OneSidedTransfer(std::string_view transport, std::string_view direction, bool ok) {
  std::lock_guard lock(mu_);
  one_sided_
      ->Add({{"transport", std::string(transport)},
             {"direction", std::string(direction)},
             {"result", ok ? "ok" : "failed"}})
      .Increment();
}

void Metrics::QuotaRefused(std::string_view ns, std::string_view quota) {
  std::lock_guard lock(mu_);
  quota_refusals_->Add({{"namespace", std::string(ns)}, {"quota", std::string(quota)}}).Increment();
}

void Metrics::LimitRefused(std::string_view limit) {
  std::lock_guard lock(mu_);
  limit_refusals_->Add({{"limit", std::string(limit)}}).Increment();
}

void Metrics::CountNamespaceRequest(std::string_view ns, Op op, StatusCode result) {
  std::lock_guard lock(mu_);
  namespace_requests_
      ->Add({{"namespace", std::string(ns)},
             {"op", std::string(OpName(op))},
             {"result", SnakeCode(result)}})
      .Increment();
}

void Metrics::ConnectionOpened() {
  connections_.fetch_add(1);
  connections_gauge_->Increment();
  connections_total_->Increment();
}

void Metrics::ConnectionClosed() {
  connections_.fetch_sub(1);
  connections_gauge_->Decrement();
}

void Metrics::AttachStore(Store* store) {
  store_collector_ = std::make_shared<StoreCollector>(store);
}

}  // namespace kvstore::server
