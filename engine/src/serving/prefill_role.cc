// The prefill role: reuse what the store already holds, compute the rest in
// chunks, and publish each full block as soon as it exists.
#include <spdlog/spdlog.h>

#include "job.h"
#include "kvstore/engine/scheduler.h"

namespace kvstore::engine {

namespace {

BlockKey LocalKey(const Key& key) {
  return BlockKey(reinterpret_cast<const char*>(key.bytes.data()), key.bytes.size());
}

}  // namespace

Result<std::vector<float>> Scheduler::PrefillWithStore(const std::shared_ptr<Job>& job) {
  PagedKvCache& cache = model_->kv_cache();
  const int bs = cache.block_size();
  const std::span<const int32_t> tokens = job->request.prompt;
  const std::span<const Key> keys = job->keys;
  const int n = static_cast<int>(keys.size());

  // 1. Blocks already in the store: one more pending taker each, so the
  // request that stored them and this one can both drop_select them.
  int retained = 0;
  if (n > 0) {
    Result<size_t> matched = client_->MatchPrefix(keys);
    if (!matched.ok()) {
      spdlog::warn("match_prefix at kvstored {} failed ({}); computing and inserting every block",
                   options_.store, matched.status().ToString());
    } else if (*matched > 0) {
      Result<size_t> r = client_->Retain(keys.first(*matched));
      if (r.ok()) retained = static_cast<int>(*r);
    }
  }
  job->kv.reused_blocks = retained;
  if (n > 0) job->kv.node = kv_node_;
  metrics_->AddKvBlocks("reused", retained);

  // 2. Blocks this engine computed before: attach from the local prefix cache.
  KVSTORE_ASSIGN_OR_RETURN(const int local, AttachLocalPrefix(job));

  // 3. Retained blocks that are not local: read them (select, no drop).
  if (retained > local) {
    const int count = retained - local;
    std::vector<std::byte> payload(static_cast<size_t>(count) * block_bytes_);
    std::vector<std::span<std::byte>> dst;
    for (int i = 0; i < count; ++i)
      dst.push_back(std::span(payload).subspan(i * block_bytes_, block_bytes_));
    auto read = client_->SelectInto(keys.subspan(local, count), dst);
    if (read.ok()) {
      Status s = cache.UnpackBlocks(job->seq, payload, count * bs);
      if (!s.ok()) spdlog::warn("unpacking {} reused blocks failed: {}", count, s.ToString());
    } else {
      spdlog::info("select of {} reused blocks failed ({}); computing them", count,
                   read.status().ToString());
    }
  }

  // 4. Compute the rest chunk by chunk; after each chunk, every new full
  // block goes to the publisher while the model computes the next.
  int next_publish = retained;
  auto publish_ready = [&] {
    int full = std::min(n, cache.NumTokens(job->seq) / bs);
    for (; next_publish < full; ++next_publish) PublishBlock(job, next_publish);
  };
  publish_ready();
  const size_t total = tokens.size();
  const size_t chunk = static_cast<size_t>(std::max(1, options_.prefill_chunk_blocks) * bs);
  size_t done = static_cast<size_t>(cache.NumTokens(job->seq));
  std::vector<float> logits;
  do {
    size_t end = std::min(total, (done / bs) * bs + chunk);
    if (end <= done) end = total;  // all cached: recompute the last position for logits
    KVSTORE_ASSIGN_OR_RETURN(logits, model_->Prefill(job->seq, tokens.first(end)));
    done = static_cast<size_t>(cache.NumTokens(job->seq));
    publish_ready();
  } while (done < total);

  PublishLocal(job);
  return logits;
}

Result<int> Scheduler::AttachLocalPrefix(const std::shared_ptr<Job>& job) {
  PagedKvCache& cache = model_->kv_cache();
  std::vector<BlockKey> local_keys;
  for (const Key& k : job->keys) local_keys.push_back(LocalKey(k));
  const int local = cache.MatchPrefix(local_keys);
  if (local > 0)
    KVSTORE_RETURN_IF_ERROR(cache.AttachPrefix(job->seq, std::span(local_keys).first(local)));
  job->kv.local_blocks = local;
  metrics_->AddKvBlocks("local", local);
  return local;
}

void Scheduler::PublishLocal(const std::shared_ptr<Job>& job) {
  PagedKvCache& cache = model_->kv_cache();
  const int full = std::min<int>(job->keys.size(), cache.NumTokens(job->seq) / cache.block_size());
  for (int b = 0; b < full; ++b) (void)cache.PublishBlock(job->seq, b, LocalKey(job->keys[b]));
}

Result<std::vector<float>> Scheduler::PrefillWithLocalCache(const std::shared_ptr<Job>& job) {
  KVSTORE_RETURN_IF_ERROR(AttachLocalPrefix(job).status());
  KVSTORE_ASSIGN_OR_RETURN(std::vector<float> logits,
                           model_->Prefill(job->seq, job->request.prompt));
  PublishLocal(job);
  return logits;
}

void Scheduler::PublishBlock(const std::shared_ptr<Job>& job, int block) {
  auto done = [this, job, bytes = static_cast<uint64_t>(block_bytes_)](int slot) {
    return [this, job, bytes, slot](PublishOutcome outcome, const Status&) {
      if (slot >= 0) staging_->Release(std::span<const int>(&slot, 1));
      if (outcome == PublishOutcome::kInserted) {
        metrics_->AddKvPushed(bytes);
        std::lock_guard<std::mutex> lock(job->mu);
        job->kv.bytes += bytes;
        if (slot >= 0) job->kv.registered_blocks++;
      }
      PrefillBlockDone(job, outcome);
    };
  };
  // The zero-copy path: pack into a registered slot, insert from the region.
  std::vector<int> slot = staging_ ? staging_->TryAcquire(1) : std::vector<int>();
  if (!slot.empty()) {
    Status packed = model_->kv_cache().PackBlocks(job->seq, block, 1, staging_->Slot(slot[0]));
    if (packed.ok()) {
      {
        std::lock_guard<std::mutex> lock(job->mu);
        job->pending_blocks++;
      }
      publisher_->EnqueueRegion(job->keys[block], staging_->SliceOf(slot[0]),
                                staging_->Slot(slot[0]), done(slot[0]));
      return;
    }
    staging_->Release(slot);
  }
  auto payload = model_->kv_cache().PackBlock(job->seq, block);
  if (!payload.ok()) {
    spdlog::error("packing block {} failed: {}", block, payload.status().ToString());
    std::lock_guard<std::mutex> lock(job->mu);
    job->kv.insert_errors++;
    return;
  }
  {
    std::lock_guard<std::mutex> lock(job->mu);
    job->pending_blocks++;
  }
  publisher_->Enqueue(job->keys[block], std::move(payload).value(), done(-1));
}

void Scheduler::PrefillComputeDone(const std::shared_ptr<Job>& job) {
  FreeSequences(*job);
  bool finish;
  {
    std::lock_guard<std::mutex> lock(job->mu);
    job->compute_done = true;
    finish = job->pending_blocks == 0;
  }
  if (finish) Finish(job);
}

void Scheduler::PrefillBlockDone(const std::shared_ptr<Job>& job, PublishOutcome outcome) {
  bool finish;
  {
    std::lock_guard<std::mutex> lock(job->mu);
    switch (outcome) {
      case PublishOutcome::kInserted:
        job->kv.inserted_blocks++;
        break;
      case PublishOutcome::kRetained:
        job->kv.reused_blocks++;
        break;
      case PublishOutcome::kFailed:
        job->kv.insert_errors++;
        break;
    }
    finish = --job->pending_blocks == 0 && job->compute_done;
  }
  metrics_->AddKvBlocks(outcome == PublishOutcome::kInserted   ? "inserted"
                        : outcome == PublishOutcome::kRetained ? "reused"
                                                               : "insert_failed",
                        1);
  if (finish) Finish(job);
}

}  // namespace kvstore::engine
