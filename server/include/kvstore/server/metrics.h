// Prometheus metrics of kvstored. Counters and histograms are updated on the
// request path; gauges of what the store holds are read from the Store at
// scrape time (StoreCollector), so they are never stale.
//
// Thread-safety: all methods are thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "kvstore/status.h"

namespace kvstore::server {

class Store;

enum class Op : uint8_t {
  kHello,
  kInsert,
  kSelect,
  kDropSelect,
  kMatchPrefix,
  kRemove,
  kStats,
  kList,
  kPing,
  kAck,
  kRetain,
  kRegion,  // registerRegion / unregisterRegion
  kInsertMany,
  kMalformed,  // a frame or message that could not be read as a request
  kUnknown,    // a request kind this daemon does not know (a newer client)
  kCount_,
};
// The metric label of each kind: "hello", "insert", "insert_many", ..., "malformed", "unknown".
std::string_view OpName(Op op);

class Metrics {
 public:
  Metrics();

  void CountRequest(Op op, StatusCode result, double seconds);
  void ObserveWait(double seconds);
  void ProtocolError(std::string_view reason);
  // A connection settled on `transport` (tcp, local, rdma) at hello.
  void TransportChosen(std::string_view transport);
  // One one-sided transfer: direction "pull" (insert) or "push" (select), ok or failed.
  void OneSidedTransfer(std::string_view transport, std::string_view direction, bool ok);
  void AddBytesIn(uint64_t n) { bytes_in_->Increment(static_cast<double>(n)); }
  void AddBytesOut(uint64_t n) { bytes_out_->Increment(static_cast<double>(n)); }
  // A request refused because namespace `ns` is at `quota` (connections, waiters, bytes, entries).
  void QuotaRefused(std::string_view ns, std::string_view quota);
  // A request refused because the daemon is at a global `limit` (waiters,
  // keys_per_request, pending_bytes); the error names the flag that raises it.
  void LimitRefused(std::string_view limit);
  // A request of a tenant in namespace `ns` (only when tenants are configured).
  void CountNamespaceRequest(std::string_view ns, Op op, StatusCode result);
  void ConnectionOpened();
  void ConnectionClosed();
  uint64_t connections() const { return connections_.load(); }

  // Adds the scrape-time gauges of `store` (which must outlive the registry's use).
  void AttachStore(Store* store);
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }
  std::shared_ptr<prometheus::Collectable> store_collector() const { return store_collector_; }

 private:
  static constexpr size_t kOps = static_cast<size_t>(Op::kCount_);
  static constexpr size_t kCodes = 9;

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* latency_;
  std::array<prometheus::Histogram*, kOps> latency_by_op_{};
  prometheus::Histogram* wait_;
  prometheus::Family<prometheus::Counter>* protocol_errors_;
  prometheus::Family<prometheus::Counter>* transports_;
  prometheus::Family<prometheus::Counter>* one_sided_;
  prometheus::Family<prometheus::Counter>* quota_refusals_;
  prometheus::Family<prometheus::Counter>* limit_refusals_;
  prometheus::Family<prometheus::Counter>* namespace_requests_;
  prometheus::Counter* bytes_in_;
  prometheus::Counter* bytes_out_;
  prometheus::Gauge* connections_gauge_;
  prometheus::Counter* connections_total_;
  std::atomic<uint64_t> connections_{0};

  std::mutex mu_;
  std::array<std::array<std::atomic<prometheus::Counter*>, kCodes>, kOps> by_op_code_{};
  std::shared_ptr<prometheus::Collectable> store_collector_;
};

}  // namespace kvstore::server
