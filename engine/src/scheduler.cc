#include "kvstore/engine/scheduler.h"

#include <filesystem>

#include <spdlog/spdlog.h>

#include "job.h"
#include "kvstore/engine/tokenizer.h"

namespace kvstore::engine {

namespace {

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

Scheduler::Scheduler(const EngineOptions& options, EngineMetrics* metrics)
    : options_(options), metrics_(metrics) {}

Result<std::unique_ptr<Scheduler>> Scheduler::Create(const EngineOptions& options,
                                                     EngineMetrics* metrics) {
  std::unique_ptr<Scheduler> s(new Scheduler(options, metrics));
  ModelOptions mo;
  mo.num_threads = options.threads;
  mo.kv_cache_blocks = options.kv_cache_blocks;
  std::string model_id;
  if (options.model == "builtin") {
    KVSTORE_ASSIGN_OR_RETURN(s->model_, Model::CreateBuiltin(options.model_seed, mo));
    model_id = "builtin-seed" + std::to_string(options.model_seed);
  } else {
    auto m = Model::LoadHf(options.model, mo);
    if (!m.ok()) return m.status().WithContext("--model " + options.model);
    s->model_ = std::move(m).value();
    model_id = std::filesystem::path(options.model).filename().string();
  }
  s->vocab_size_ = s->model_->config().vocab_size;
  s->has_text_tokenizer_ = options.model == "builtin";
  s->kv_layout_ = s->model_->KvLayout();
  s->block_bytes_ = s->model_->kv_cache().PackedBlockBytes();
  // Equal keys must mean equal KV: the weights (model id), the packed layout
  // and the parallel rank all go into the namespace.
  s->key_ns_ = model_id + "/" + s->kv_layout_ + "/rank0";

  if (options.role == Role::kPrefill || options.role == Role::kDecode) {
    ClientOptions co;
    co.address = options.store;
    co.client_name =
        std::string("kvstore-engine ") + std::string(RoleName(options.role)) + " " + options.listen;
    co.max_connections = static_cast<size_t>(options.kv_load_threads) + 4;
    co.transport = options.kv_transport;
    // kvstored may still be starting (e.g. all processes launched at once): retry briefly.
    auto c = Client::Connect(co);
    for (int i = 0; i < 50 && !c.ok() && c.status().code() == StatusCode::kUnavailable; ++i) {
      if (i == 0)
        spdlog::info("kvstored at {} not reachable yet; retrying for 10 s", options.store);
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      c = Client::Connect(co);
    }
    if (!c.ok())
      return c.status().WithContext("connecting to kvstored at --store " + options.store +
                                    " (is it running?)");
    s->client_ = std::move(c).value();
    spdlog::info("kvstored at {}: KV blocks move over {} (--kv-transport {})", options.store,
                 s->client_->TransferStats().transport, options.kv_transport);
  }
  if (options.role == Role::kPrefill) {
    InsertOptions io;
    io.layout = s->kv_layout_;
    io.producer = "kvstore-engine prefill " + options.listen;
    io.ttl = options.kv_ttl;
    s->publisher_ = std::make_unique<KvPublisher>(s->client_.get(), io);
  }
  s->worker_ = std::thread([p = s.get()] { p->WorkerLoop(); });
  if (options.role == Role::kDecode) {
    for (int i = 0; i < options.kv_load_threads; ++i)
      s->loaders_.emplace_back([p = s.get()] { p->LoaderLoop(); });
  }
  spdlog::info("{} engine: model {} ({}), backend {}, {} CPU threads, key namespace \"{}\"",
               RoleName(options.role), options.model, s->kv_layout_,
               BackendName(s->model_->backend()), options.threads, s->key_ns_);
  return s;
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  load_cv_.notify_all();
  for (auto& t : loaders_) t.join();
  if (worker_.joinable()) worker_.join();
  publisher_.reset();  // drains pending inserts; their callbacks only touch jobs
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& j : to_load_) Fail(j, 503, "shutting_down", "the engine is shutting down");
  for (auto& j : ready_) Fail(j, 503, "shutting_down", "the engine is shutting down");
}

Status Scheduler::Health() {
  if (client_) return client_->Ping().WithContext("kvstored at " + options_.store);
  return Status::Ok();
}

void Scheduler::Submit(CompletionRequest request, std::shared_ptr<RequestStream> out) {
  auto job = std::make_shared<Job>();
  job->request = std::move(request);
  job->out = std::move(out);
  job->sampler.emplace(job->request.sampling);
  {
    std::vector<uint32_t> t(job->request.prompt.begin(), job->request.prompt.end());
    KeyOptions ko;
    ko.ns = key_ns_;
    ko.block_size = static_cast<uint32_t>(model_->kv_cache().block_size());
    job->keys = PrefixKeys(t, ko);
  }
  job->kv.full_blocks = static_cast<int>(job->keys.size());
  metrics_->AddPromptTokens(static_cast<int>(job->request.prompt.size()));
  metrics_->RunningDelta(1);
  if (options_.role == Role::kDecode) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      to_load_.push_back(std::move(job));
    }
    load_cv_.notify_one();
    return;
  }
  MakeReady(std::move(job));
}

void Scheduler::MakeReady(std::shared_ptr<Job> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ready_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void Scheduler::WorkerLoop() {
  for (;;) {
    std::deque<std::shared_ptr<Job>> admit;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !ready_.empty() || !active_.empty(); });
      if (stop_) break;
      admit.swap(ready_);
    }
    for (auto& job : admit) Admit(job);
    if (!active_.empty()) DecodeStep();
  }
  for (auto& job : active_) Fail(job, 503, "shutting_down", "the engine is shutting down");
  active_.clear();
}

void Scheduler::Admit(const std::shared_ptr<Job>& job) {
  if (job->out->cancelled()) {
    Fail(job, 499, "cancelled", "client went away");
    return;
  }
  PagedKvCache& cache = model_->kv_cache();
  job->seq = cache.CreateSequence();
  Result<std::vector<float>> logits = Status::Internal("unreachable");
  switch (options_.role) {
    case Role::kPrefill:
      logits = PrefillWithStore(job);
      break;
    case Role::kDecode:
      logits = PrefillFromLoadedKv(job);
      break;
    default:
      logits = PrefillWithLocalCache(job);
      break;
  }
  if (!logits.ok()) {
    const Status& s = logits.status();
    int code = s.code() == StatusCode::kResourceExhausted ? 503
               : s.code() == StatusCode::kInvalidArgument ? 400
                                                          : 500;
    spdlog::warn("prefill of a {}-token prompt failed: {}", job->request.prompt.size(),
                 s.ToString());
    Fail(job, code, "prefill_failed", "prefill: " + s.ToString());
    return;
  }
  EmitToken(*job, job->sampler->Sample(*logits));
  if (options_.role == Role::kPrefill) {
    PrefillComputeDone(job);
    return;
  }
  if (IsFinished(*job)) {
    Finish(job, FinishReason(*job));
    return;
  }
  active_.push_back(job);
}

bool Scheduler::IsFinished(const Job& job) const {
  if (static_cast<int>(job.generated.size()) >= job.request.max_tokens) return true;
  return job.request.stop_at_eos && has_text_tokenizer_ &&
         job.generated.back() == ByteTokenizer::kEos;
}

std::string Scheduler::FinishReason(const Job& job) const {
  bool eos =
      job.request.stop_at_eos && has_text_tokenizer_ && job.generated.back() == ByteTokenizer::kEos;
  return eos ? "stop" : "length";
}

void Scheduler::DecodeStep() {
  std::vector<std::shared_ptr<Job>> still;
  std::vector<std::shared_ptr<Job>> batch;
  for (auto& job : active_) {
    if (job->out->cancelled()) {
      Fail(job, 499, "cancelled", "client went away");
      continue;
    }
    if (static_cast<int>(batch.size()) < options_.max_batch)
      batch.push_back(job);
    else
      still.push_back(job);
  }
  active_.clear();
  if (!batch.empty()) {
    std::vector<SequenceId> seqs;
    std::vector<int32_t> tokens;
    for (auto& job : batch) {
      seqs.push_back(job->seq);
      tokens.push_back(job->generated.back());
    }
    auto logits = model_->DecodeBatch(seqs, tokens);
    if (!logits.ok()) {
      spdlog::error("decode step over {} sequences failed: {}", batch.size(),
                    logits.status().ToString());
      for (auto& job : batch) Fail(job, 503, "decode_failed", logits.status().ToString());
    } else {
      for (size_t i = 0; i < batch.size(); ++i) {
        auto& job = batch[i];
        EmitToken(*job, job->sampler->Sample((*logits)[i]));
        if (IsFinished(*job)) {
          Finish(job, FinishReason(*job));
        } else {
          still.push_back(job);
        }
      }
    }
  }
  // Round-robin beyond max_batch: the ones left out go first next step.
  active_.insert(active_.begin(), still.begin(), still.end());
}

void Scheduler::EmitToken(Job& job, int32_t token) {
  auto now = std::chrono::steady_clock::now();
  if (job.generated.empty())
    metrics_->ObserveTtft(Seconds(now - job.out->arrival()));
  else
    metrics_->ObserveItl(Seconds(now - job.last_token_time));
  job.last_token_time = now;
  job.generated.push_back(token);
  metrics_->AddGeneratedTokens(1);
  if (job.request.stream) {
    StreamEvent e;
    e.kind = StreamEvent::Kind::kToken;
    e.token = token;
    job.out->Push(std::move(e));
  }
}

void Scheduler::Finish(const std::shared_ptr<Job>& job, std::string finish_reason) {
  if (job->seq != 0 && model_->kv_cache().HasSequence(job->seq))
    (void)model_->kv_cache().FreeSequence(job->seq);
  job->seq = 0;
  StreamEvent e;
  e.kind = StreamEvent::Kind::kDone;
  e.result.tokens = job->generated;
  if (has_text_tokenizer_) e.result.text = ByteTokenizer::Decode(job->generated);
  e.result.finish_reason = std::move(finish_reason);
  e.result.prompt_tokens = static_cast<int>(job->request.prompt.size());
  e.result.kv = job->kv;
  metrics_->ObserveE2e(Seconds(std::chrono::steady_clock::now() - job->out->arrival()));
  metrics_->RequestDone(true);
  metrics_->RunningDelta(-1);
  job->out->Push(std::move(e));
}

void Scheduler::Fail(const std::shared_ptr<Job>& job, int http_status, std::string type,
                     std::string message) {
  // Only the worker frees sequences; Fail from other threads comes before admission.
  if (job->seq != 0 && std::this_thread::get_id() == worker_.get_id() &&
      model_->kv_cache().HasSequence(job->seq))
    (void)model_->kv_cache().FreeSequence(job->seq);
  job->seq = 0;
  StreamEvent e;
  e.kind = StreamEvent::Kind::kError;
  e.http_status = http_status;
  e.error_type = std::move(type);
  e.message = std::move(message);
  metrics_->RequestDone(false);
  metrics_->RunningDelta(-1);
  job->out->Push(std::move(e));
}

}  // namespace kvstore::engine
