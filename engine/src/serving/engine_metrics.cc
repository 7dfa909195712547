#include "kvstore/engine/engine_metrics.h"

#include <prometheus/text_serializer.h>

namespace kvstore::engine {

namespace p = prometheus;

namespace {

// start, start*factor, ... while below end.
p::Histogram::BucketBoundaries Buckets(double start, double factor, double end) {
  p::Histogram::BucketBoundaries b;
  for (double v = start; v < end; v *= factor) b.push_back(v);
  return b;
}

p::ClientMetric Sample(std::vector<p::ClientMetric::Label> labels, double value, bool counter) {
  p::ClientMetric m;
  m.label = std::move(labels);
  (counter ? m.counter.value : m.gauge.value) = value;
  return m;
}

// The store cluster as the engine's client sees it (see the header).
std::vector<p::MetricFamily> ClusterFamilies(const cluster::ClusterClientStats& s,
                                             const std::string& role) {
  auto family = [](const char* name, const char* help, p::MetricType type) {
    return p::MetricFamily{name, help, type, {}};
  };
  auto requests =
      family("kvstore_engine_store_requests_total",
             "Calls sent to each store node of the cluster, by op", p::MetricType::Counter);
  auto bytes = family("kvstore_engine_store_bytes_total",
                      "Value bytes sent (insert) or received (select, drop_select) per store node",
                      p::MetricType::Counter);
  auto failures =
      family("kvstore_engine_store_failures_total",
             "Calls or connections that found a store node unreachable", p::MetricType::Counter);
  for (const auto& n : s.nodes) {
    failures.metric.push_back(
        Sample({{"role", role}, {"node", n.address}}, static_cast<double>(n.failures), true));
    for (const auto& o : n.ops) {
      std::vector<p::ClientMetric::Label> l = {
          {"role", role}, {"node", n.address}, {"op", std::string(cluster::NodeOpName(o.op))}};
      requests.metric.push_back(Sample(l, static_cast<double>(o.requests), true));
      bytes.metric.push_back(Sample(l, static_cast<double>(o.bytes), true));
    }
  }
  auto changes = family("kvstore_engine_store_membership_changes_total",
                        "Store nodes that joined or left the cluster while this engine ran",
                        p::MetricType::Counter);
  changes.metric.push_back(
      Sample({{"role", role}, {"change", "join"}}, static_cast<double>(s.joins), true));
  changes.metric.push_back(
      Sample({{"role", role}, {"change", "leave"}}, static_cast<double>(s.leaves), true));
  auto members =
      family("kvstore_engine_store_members",
             "Live store nodes in the membership this engine places keys by", p::MetricType::Gauge);
  members.metric.push_back(Sample({{"role", role}}, static_cast<double>(s.members), false));
  auto etcd = family("kvstore_engine_store_etcd_reachable",
                     "1 when the last read of the membership from etcd succeeded, else 0 (the "
                     "engine keeps the last membership it saw)",
                     p::MetricType::Gauge);
  etcd.metric.push_back(Sample({{"role", role}}, s.etcd_reachable ? 1 : 0, false));
  return {requests, bytes, failures, changes, members, etcd};
}

}  // namespace

EngineMetrics::EngineMetrics(std::string role)
    : role_(std::move(role)), registry_(std::make_shared<p::Registry>()) {
  const p::Labels labels = {{"role", role_}};
  ttft_ = &p::BuildHistogram()
               .Name("kvstore_engine_ttft_seconds")
               .Help("Time from request arrival to its first token")
               .Register(*registry_)
               .Add(labels, Buckets(1e-3, 1.5, 60));
  itl_ = &p::BuildHistogram()
              .Name("kvstore_engine_itl_seconds")
              .Help("Inter-token latency: time between consecutive tokens of a request")
              .Register(*registry_)
              .Add(labels, Buckets(2.5e-4, 1.5, 30));
  e2e_ = &p::BuildHistogram()
              .Name("kvstore_engine_e2e_seconds")
              .Help("Time from request arrival to its last token")
              .Register(*registry_)
              .Add(labels, Buckets(1e-3, 1.5, 300));
  auto& requests = p::BuildCounter()
                       .Name("kvstore_engine_requests_total")
                       .Help("Completion requests answered, by result")
                       .Register(*registry_);
  requests_ok_ = &requests.Add({{"role", role_}, {"result", "ok"}});
  requests_error_ = &requests.Add({{"role", role_}, {"result", "error"}});
  prompt_tokens_ = &p::BuildCounter()
                        .Name("kvstore_engine_prompt_tokens_total")
                        .Help("Prompt tokens of accepted requests")
                        .Register(*registry_)
                        .Add(labels);
  generated_tokens_ = &p::BuildCounter()
                           .Name("kvstore_engine_generated_tokens_total")
                           .Help("Tokens generated")
                           .Register(*registry_)
                           .Add(labels);
  tokens_per_second_ = &p::BuildGauge()
                            .Name("kvstore_engine_tokens_per_second")
                            .Help("Generated tokens per second over the last ~10 s window")
                            .Register(*registry_)
                            .Add(labels);
  kv_pushed_ = &p::BuildCounter()
                    .Name("kvstore_engine_kv_bytes_pushed_total")
                    .Help("KV bytes inserted into kvstored (prefill)")
                    .Register(*registry_)
                    .Add(labels);
  kv_pulled_ = &p::BuildCounter()
                    .Name("kvstore_engine_kv_bytes_pulled_total")
                    .Help("KV bytes taken from kvstored (decode)")
                    .Register(*registry_)
                    .Add(labels);
  kv_blocks_ = &p::BuildCounter()
                    .Name("kvstore_engine_kv_blocks_total")
                    .Help(
                        "KV blocks by what happened to them: inserted, reused (retained in "
                        "the store), local (prefix cache), loaded, recomputed")
                    .Register(*registry_);
  kv_misses_ = &p::BuildCounter()
                    .Name("kvstore_engine_kv_misses_total")
                    .Help("Decode requests whose KV did not come from the store, by reason")
                    .Register(*registry_);
  upstream_errors_ = &p::BuildCounter()
                          .Name("kvstore_engine_upstream_errors_total")
                          .Help("Proxy: failed requests to prefill or decode engines")
                          .Register(*registry_);
  running_ = &p::BuildGauge()
                  .Name("kvstore_engine_running_requests")
                  .Help("Requests in flight")
                  .Register(*registry_)
                  .Add(labels);
}

void EngineMetrics::AddGeneratedTokens(int n) {
  generated_tokens_->Increment(n);
  std::lock_guard<std::mutex> lock(rate_mu_);
  window_tokens_ += n;
  auto now = std::chrono::steady_clock::now();
  double elapsed = std::chrono::duration<double>(now - window_start_).count();
  if (elapsed >= 10) {
    tokens_per_second_->Set(window_tokens_ / elapsed);
    window_tokens_ = 0;
    window_start_ = now;
  }
}

void EngineMetrics::AddKvBlocks(const std::string& event, int n) {
  if (n > 0) kv_blocks_->Add({{"role", role_}, {"event", event}}).Increment(n);
}

void EngineMetrics::KvMiss(const std::string& reason) {
  kv_misses_->Add({{"role", role_}, {"reason", reason}}).Increment();
}

void EngineMetrics::UpstreamError(const std::string& upstream) {
  upstream_errors_->Add({{"role", role_}, {"upstream", upstream}}).Increment();
}

std::string EngineMetrics::Render() {
  {
    // A quiet engine's rate decays to zero instead of freezing at its last value.
    std::lock_guard<std::mutex> lock(rate_mu_);
    double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - window_start_).count();
    if (elapsed >= 10) {
      tokens_per_second_->Set(window_tokens_ / elapsed);
      window_tokens_ = 0;
      window_start_ = std::chrono::steady_clock::now();
    }
  }
  auto families = registry_->Collect();
  {
    std::lock_guard<std::mutex> lock(cluster_mu_);
    if (cluster_stats_) {
      for (auto& f : ClusterFamilies(cluster_stats_(), role_)) families.push_back(std::move(f));
    }
  }
  return p::TextSerializer().Serialize(families);
}

void EngineMetrics::SetStoreCluster(std::function<cluster::ClusterClientStats()> stats) {
  std::lock_guard<std::mutex> lock(cluster_mu_);
  cluster_stats_ = std::move(stats);
}

}  // namespace kvstore::engine
