// The decode role: take the prompt's blocks from the store (drop_select,
// waiting up to --kv-timeout), then let the worker unpack them and compute
// only the tail. A miss is recomputed or failed per --on-kv-miss.
#include <spdlog/spdlog.h>

#include "job.h"
#include "kvstore/engine/scheduler.h"

namespace kvstore::engine {

namespace {

std::string MissReason(StatusCode code) {
  switch (code) {
    case StatusCode::kTimeout:
      return "timeout";
    case StatusCode::kDataLoss:
      return "data_loss";
    case StatusCode::kUnavailable:
      return "unavailable";
    case StatusCode::kNotFound:
      return "not_found";
    default:
      return "error";
  }
}

}  // namespace

void Scheduler::LoaderLoop() {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      load_cv_.wait(lock, [&] { return stop_ || !to_load_.empty(); });
      if (stop_) return;
      job = std::move(to_load_.front());
      to_load_.pop_front();
    }
    LoadKv(job);
  }
}

void Scheduler::LoadKv(const std::shared_ptr<Job>& job) {
  const size_t n = job->keys.size();
  if (n == 0) {  // shorter than a block: nothing was stored
    MakeReady(job);
    return;
  }
  // The zero-copy path: drop_select straight into registered slots; plain
  // buffers when the staging region is full.
  std::vector<std::span<std::byte>> dst;
  std::vector<RegionSlice> slices;
  if (staging_) job->kv_slots = staging_->TryAcquire(static_cast<int>(n));
  if (!job->kv_slots.empty()) {
    for (int slot : job->kv_slots) slices.push_back(staging_->SliceOf(slot));
  } else {
    job->kv_payload.resize(n * block_bytes_);
    for (size_t i = 0; i < n; ++i)
      dst.push_back(std::span(job->kv_payload).subspan(i * block_bytes_, block_bytes_));
  }
  // The prefill's store node when it said (a cluster's local placement): one hop.
  const CallOptions at{job->request.kv_node};
  auto drop_select = [&](size_t count, std::chrono::milliseconds timeout) {
    std::span<const Key> keys = std::span(job->keys).first(count);
    return slices.empty()
               ? client_->DropSelectInto(keys, std::span(dst).first(count), timeout, at)
               : client_->DropSelectIntoRegions(keys, std::span(slices).first(count), timeout, at);
  };

  Status miss;
  bool bad_layout = false;  // blocks arrived but cannot be this model's KV
  if (!job->request.remote_prefill) {
    miss = Status::Unavailable("the proxy reports that the prefill of this request failed");
  } else {
    auto got = drop_select(n, options_.kv_timeout);
    if (got.ok()) {
      for (const EntryInfo& e : *got) {
        if (e.meta.size != block_bytes_ || e.meta.layout != kv_layout_) {
          bad_layout = true;
          miss = Status::DataLoss("block " + e.key.ToHex().substr(0, 16) + " has layout \"" +
                                  e.meta.layout + "\" and " + std::to_string(e.meta.size) +
                                  " bytes; this engine needs \"" + kv_layout_ + "\" and " +
                                  std::to_string(block_bytes_));
          break;
        }
      }
      if (miss.ok()) job->kv.loaded_blocks = static_cast<int>(n);
    } else {
      miss = got.status();
    }
  }

  if (!miss.ok()) {
    std::string reason = !job->request.remote_prefill ? "prefill_failed"
                         : bad_layout                 ? "bad_layout"
                                                      : MissReason(miss.code());
    metrics_->KvMiss(reason);
    job->kv.miss = reason;
    if (options_.on_kv_miss == KvMissPolicy::kFail) {
      spdlog::warn(
          "KV of a {}-block prompt missing ({}); failing the request "
          "(--on-kv-miss fail)",
          n, miss.ToString());
      Fail(job, miss.code() == StatusCode::kTimeout ? 504 : 503, "kv_miss",
           "the KV cache of this prompt did not arrive from kvstored at " + options_.store + " (" +
               miss.ToString() +
               "); the engine runs with --on-kv-miss fail. Check that the prefill engine is "
               "up, or retry");
      return;
    }
    // Take whatever leading blocks did arrive (e.g. a prefill that died
    // half-way), and recompute the rest.
    int partial = 0;
    if (!bad_layout) {
      auto m = client_->MatchPrefix(job->keys, at);
      if (m.ok() && *m > 0) {
        auto got = drop_select(*m, std::chrono::milliseconds(1000));
        if (got.ok()) partial = static_cast<int>(*m);
      }
    }
    job->kv.loaded_blocks = partial;
    spdlog::info("KV of a {}-block prompt missing ({}); recomputing {} blocks{}", n,
                 miss.ToString(), n - partial,
                 partial ? " (" + std::to_string(partial) + " leading blocks found)" : "");
  }
  job->kv.bytes = static_cast<uint64_t>(job->kv.loaded_blocks) * block_bytes_;
  if (!job->kv_slots.empty()) job->kv.registered_blocks = job->kv.loaded_blocks;
  job->kv_payload.resize(job->kv_slots.empty() ? job->kv.bytes : 0);
  metrics_->AddKvPulled(job->kv.bytes);
  metrics_->AddKvBlocks("loaded", job->kv.loaded_blocks);
  metrics_->AddKvBlocks("recomputed", static_cast<int>(n) - job->kv.loaded_blocks);
  MakeReady(job);
}

Result<std::vector<float>> Scheduler::PrefillFromLoadedKv(const std::shared_ptr<Job>& job) {
  PagedKvCache& cache = model_->kv_cache();
  if (job->kv.loaded_blocks > 0) {
    Status s;
    if (!job->kv_slots.empty()) {
      for (int i = 0; i < job->kv.loaded_blocks && s.ok(); ++i)
        s = cache.UnpackBlocks(job->seq, staging_->Slot(job->kv_slots[i]), cache.block_size());
    } else {
      s = cache.UnpackBlocks(job->seq, job->kv_payload, job->kv.loaded_blocks * cache.block_size());
    }
    if (!s.ok()) {
      spdlog::warn("unpacking {} loaded blocks failed ({}); recomputing them",
                   job->kv.loaded_blocks, s.ToString());
      (void)cache.FreeSequence(job->seq);
      job->seq = cache.CreateSequence();
      metrics_->KvMiss("unpack");
      job->kv.miss = "unpack";
    }
  }
  ReleaseKvSlots(*job);
  std::vector<std::byte>().swap(job->kv_payload);
  return model_->Prefill(job->seq, job->request.prompt);
}

void Scheduler::ReleaseKvSlots(Job& job) {
  if (job.kv_slots.empty()) return;
  staging_->Release(job.kv_slots);
  job.kv_slots.clear();
}

}  // namespace kvstore::engine
