// EngineMetrics: the Prometheus metrics of one kvstore-engine process,
// rendered as text on its own GET /metrics (no second HTTP server).
//
// All series carry role="<role>". Latencies are seconds:
//   kvstore_engine_ttft_seconds           arrival -> first token (histogram)
//   kvstore_engine_itl_seconds            between consecutive tokens (histogram)
//   kvstore_engine_e2e_seconds            arrival -> last token (histogram)
//   kvstore_engine_requests_total{result} ok / error
//   kvstore_engine_prompt_tokens_total, kvstore_engine_generated_tokens_total
//   kvstore_engine_tokens_per_second      generated tokens/s over the last ~10 s
//   kvstore_engine_kv_bytes_pushed_total  prefill: bytes inserted into kvstored
//   kvstore_engine_kv_bytes_pulled_total  decode: bytes taken from kvstored
//   kvstore_engine_kv_blocks_total{event} inserted / reused / local / loaded / recomputed
//   kvstore_engine_kv_misses_total{reason} decode: timeout / data_loss / unavailable /
//                                          bad_layout / prefill_failed / error
//   kvstore_engine_upstream_errors_total{upstream} proxy: prefill / decode
//   kvstore_engine_running_requests       in flight
// With --store etcd://... (a store cluster), what the store client sees, with role=:
//   kvstore_engine_store_requests_total{node,op}  calls sent to each store node, by op
//   kvstore_engine_store_bytes_total{node,op}     value bytes sent (insert) or received
//                                                 (select, drop_select) per node
//   kvstore_engine_store_failures_total{node}     calls or connections that found it unreachable
//   kvstore_engine_store_membership_changes_total{change}  join / leave
//   kvstore_engine_store_members                  live members in use
//   kvstore_engine_store_etcd_reachable           1 when the last membership read succeeded
//
// Thread-safety: every method is safe from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "kvstore/cluster/cluster_client.h"

namespace kvstore::engine {

class EngineMetrics {
 public:
  explicit EngineMetrics(std::string role);

  void ObserveTtft(double seconds) { ttft_->Observe(seconds); }
  void ObserveItl(double seconds) { itl_->Observe(seconds); }
  void ObserveE2e(double seconds) { e2e_->Observe(seconds); }
  void RequestDone(bool ok) { (ok ? requests_ok_ : requests_error_)->Increment(); }
  void AddPromptTokens(int n) { prompt_tokens_->Increment(n); }
  void AddGeneratedTokens(int n);
  void AddKvPushed(uint64_t bytes) { kv_pushed_->Increment(static_cast<double>(bytes)); }
  void AddKvPulled(uint64_t bytes) { kv_pulled_->Increment(static_cast<double>(bytes)); }
  // event: "inserted", "reused", "local", "loaded", "recomputed"
  void AddKvBlocks(const std::string& event, int n);
  // reason: "timeout", "data_loss", "unavailable", "bad_layout", "prefill_failed", "error"
  void KvMiss(const std::string& reason);
  void UpstreamError(const std::string& upstream);
  void RunningDelta(int delta) { running_->Increment(delta); }

  // The store client's view of its cluster, read at each Render; empty to stop
  // (before the client goes away).
  void SetStoreCluster(std::function<cluster::ClusterClientStats()> stats);

  // Prometheus text exposition format 0.0.4.
  std::string Render();

 private:
  std::string role_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Histogram* ttft_;
  prometheus::Histogram* itl_;
  prometheus::Histogram* e2e_;
  prometheus::Counter* requests_ok_;
  prometheus::Counter* requests_error_;
  prometheus::Counter* prompt_tokens_;
  prometheus::Counter* generated_tokens_;
  prometheus::Gauge* tokens_per_second_;
  prometheus::Counter* kv_pushed_;
  prometheus::Counter* kv_pulled_;
  prometheus::Family<prometheus::Counter>* kv_blocks_;
  prometheus::Family<prometheus::Counter>* kv_misses_;
  prometheus::Family<prometheus::Counter>* upstream_errors_;
  prometheus::Gauge* running_;

  std::mutex cluster_mu_;
  std::function<cluster::ClusterClientStats()> cluster_stats_;  // guarded by cluster_mu_

  std::mutex rate_mu_;
  std::chrono::steady_clock::time_point window_start_ = std::chrono::steady_clock::now();
  double window_tokens_ = 0;  // guarded by rate_mu_
};

}  // namespace kvstore::engine
