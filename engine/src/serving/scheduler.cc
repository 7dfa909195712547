#include "kvstore/engine/scheduler.h"

#include <filesystem>

#include <spdlog/spdlog.h>

#include "job.h"
#include "kvstore/cluster/cluster_client.h"
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
  if (options.model == "builtin") {
    s->tokenizer_ = std::make_unique<ByteTokenizer>();
  } else {
    auto t = LoadCheckpointTokenizer(options.model);
    if (!t.ok()) return t.status().WithContext("--model " + options.model);
    s->tokenizer_ = std::move(t).value();
    if (s->tokenizer_ && s->tokenizer_->VocabSize() > s->model_->config().vocab_size)
      return Status::InvalidArgument("--model " + options.model + ": the tokenizer has " +
                                     std::to_string(s->tokenizer_->VocabSize()) +
                                     " tokens, the model's vocab_size is " +
                                     std::to_string(s->model_->config().vocab_size));
  }
  KVSTORE_ASSIGN_OR_RETURN(ChatTemplate tmpl, ParseChatTemplate(options.chat_template));
  s->api_.vocab_size = s->model_->config().vocab_size;
  s->api_.tokenizer = s->tokenizer_.get();
  s->api_.max_tokens_limit = options.max_tokens_limit;
  s->api_.model_name = options.model_name;
  s->api_.chat_template = ResolveChatTemplate(tmpl, s->tokenizer_.get());
  s->eos_ids_ = s->model_->config().eos_token_ids;
  if (options.max_prefill_chunk < 0 ||
      (options.max_prefill_chunk > 0 && options.role != Role::kBoth))
    return Status::InvalidArgument(
        "--max-prefill-chunk: a positive token count, for --role both only (prefill engines "
        "chunk by --prefill-chunk-blocks)");
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
    if (const cluster::ClusterClient* cc = s->client_->cluster()) {
      if (cc->options().placement == cluster::PlacementKind::kLocal)
        s->kv_node_ = cc->options().local_node;
      metrics->SetStoreCluster([cc] { return cc->Stats(); });
    }
    spdlog::info("kvstored at {}: KV blocks move over {} (--kv-transport {})", options.store,
                 s->client_->TransferStats().transport, options.kv_transport);
  }
  if (s->client_ && options.kv_staging_mib > 0) {
    const int slots = std::max<int>(
        1, static_cast<int>((static_cast<size_t>(options.kv_staging_mib) << 20) / s->block_bytes_));
    KVSTORE_ASSIGN_OR_RETURN(s->staging_,
                             KvStaging::Create(s->client_.get(), s->block_bytes_, slots));
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
  spdlog::info(
      "{} engine: model {} ({}), backend {}, {} CPU threads, key namespace \"{}\", tokenizer {}, "
      "chat template {}",
      RoleName(options.role), options.model, s->kv_layout_, BackendName(s->model_->backend()),
      options.threads, s->key_ns_, s->tokenizer_ ? s->tokenizer_->Name() : "none (token ids only)",
      ChatTemplateName(s->api_.chat_template));
  return s;
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  load_cv_.notify_all();
  if (client_ && client_->cluster()) metrics_->SetStoreCluster({});
  for (auto& t : loaders_) t.join();
  if (worker_.joinable()) worker_.join();
  publisher_.reset();  // drains pending inserts; their callbacks only touch jobs and slots
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
      cv_.wait(lock, [&] {
        return stop_ || !ready_.empty() || !active_.empty() || !prefilling_.empty();
      });
      if (stop_) break;
      admit.swap(ready_);
    }
    for (auto& job : admit) Admit(job);
    if (!active_.empty() || !prefilling_.empty()) Step();
  }
  for (auto& r : active_)
    if (!r.job->failed) Fail(r.job, 503, "shutting_down", "the engine is shutting down");
  for (auto& job : prefilling_)
    if (!job->failed) Fail(job, 503, "shutting_down", "the engine is shutting down");
  active_.clear();
  prefilling_.clear();
}

void Scheduler::Admit(const std::shared_ptr<Job>& job) {
  if (job->out->cancelled()) {
    Fail(job, 499, "cancelled", "client went away");
    return;
  }
  PagedKvCache& cache = model_->kv_cache();
  job->seq = cache.CreateSequence();
  if (options_.max_prefill_chunk > 0) {  // role both: chunks go into the steps
    Result<int> local = AttachLocalPrefix(job);
    if (!local.ok()) {
      Fail(job, 500, "prefill_failed", "prefill: " + local.status().ToString());
      return;
    }
    const int n = static_cast<int>(job->request.prompt.size());
    if (cache.NumTokens(job->seq) == n)  // all cached: recompute the last position's logits
      (void)cache.SetNumTokens(job->seq, n - 1);
    prefilling_.push_back(job);
    return;
  }
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
  StartChoices(job, *logits);
}

void Scheduler::StartChoices(const std::shared_ptr<Job>& job, std::span<const float> logits) {
  PagedKvCache& cache = model_->kv_cache();
  const CompletionRequest& r = job->request;
  const bool prefill_only = options_.role == Role::kPrefill;
  job->choices.resize(r.n);
  for (int i = 0; i < r.n; ++i) {
    Choice& ch = job->choices[i];
    if (i == 0 || prefill_only) {
      ch.seq = i == 0 ? job->seq : 0;
    } else {
      auto fork = cache.ForkSequence(job->seq);
      if (!fork.ok()) {
        Fail(job, 503, "prefill_failed", fork.status().ToString());
        return;
      }
      ch.seq = *fork;
    }
    SamplingParams sp = r.sampling;
    sp.seed += static_cast<uint64_t>(i);
    ch.sampler.emplace(sp);
    if (tokenizer_) ch.text.emplace(r.stop);
    ch.result.index = r.choice_base + i;
  }
  job->seq = 0;  // the choices own the sequences now
  job->running = r.n;
  for (int i = 0; i < r.n; ++i) EmitToken(*job, i, job->choices[i].sampler->Sample(logits), logits);
  if (prefill_only) {  // the first token is all a prefill engine answers
    for (int i = 0; i < r.n; ++i)
      if (!job->choices[i].done) EndChoice(*job, i, "length");
    PrefillComputeDone(job);
    return;
  }
  for (int i = 0; i < r.n; ++i)
    if (!job->choices[i].done) active_.push_back({job, i});
  FreeSequences(*job);  // of the choices that ended on their first token
  if (job->running == 0) Finish(job);
}

void Scheduler::EmitToken(Job& job, int c, int32_t token, std::span<const float> logits) {
  Choice& ch = job.choices[c];
  const CompletionRequest& r = job.request;
  auto now = std::chrono::steady_clock::now();
  if (ch.result.tokens.empty()) {
    if (c == 0) metrics_->ObserveTtft(Seconds(now - job.out->arrival()));
  } else {
    metrics_->ObserveItl(Seconds(now - ch.last_token_time));
  }
  ch.last_token_time = now;
  ch.result.tokens.push_back(token);
  metrics_->AddGeneratedTokens(1);
  std::optional<TokenLogprob> lp;
  if (r.logprobs >= 0) {
    lp = TokenLogprobOf(logits, token, r.logprobs);
    ch.result.logprobs.push_back(*lp);
  }

  auto listed = [token](const std::vector<int32_t>& ids) {
    return std::find(ids.begin(), ids.end(), token) != ids.end();
  };
  std::string finish;
  std::string delta;
  if ((r.stop_at_eos && listed(eos_ids_)) || listed(r.stop_token_ids)) {
    finish = "stop";  // the stop token's text is not emitted
  } else if (ch.text) {
    bool stopped = false;
    delta = ch.text->Add(tokenizer_->TokenBytes(token), &stopped);
    if (stopped) finish = "stop";
  }
  if (finish.empty() && static_cast<int>(ch.result.tokens.size()) >= r.max_tokens)
    finish = "length";
  if (!finish.empty() && ch.text) delta += ch.text->Finish();
  ch.result.text += delta;
  if (r.stream) {
    StreamEvent e;
    e.kind = StreamEvent::Kind::kToken;
    e.delta.index = ch.result.index;
    e.delta.tokens = {token};
    e.delta.text = std::move(delta);
    e.delta.logprob = std::move(lp);
    e.delta.finish_reason = finish;
    e.delta.first = ch.result.tokens.size() == 1;
    job.out->Push(std::move(e));
  }
  if (!finish.empty()) {
    ch.done = true;
    ch.result.finish_reason = finish;
    job.running--;
  }
}

void Scheduler::EndChoice(Job& job, int c, std::string finish_reason) {
  Choice& ch = job.choices[c];
  std::string delta = ch.text ? ch.text->Finish() : std::string();
  ch.result.text += delta;
  ch.result.finish_reason = finish_reason;
  ch.done = true;
  job.running--;
  if (job.request.stream) {
    StreamEvent e;
    e.kind = StreamEvent::Kind::kToken;
    e.delta.index = ch.result.index;
    e.delta.text = std::move(delta);
    e.delta.finish_reason = std::move(finish_reason);
    job.out->Push(std::move(e));
  }
}

void Scheduler::FreeSequences(Job& job) {
  PagedKvCache& cache = model_->kv_cache();
  auto free = [&](SequenceId& seq) {
    if (seq != 0 && cache.HasSequence(seq)) (void)cache.FreeSequence(seq);
    seq = 0;
  };
  free(job.seq);
  for (Choice& ch : job.choices)
    if (ch.done || job.failed) free(ch.seq);
}

void Scheduler::Step() {
  // Decodes first, then prefill chunks within the --max-prefill-chunk budget
  // (0: decodes only; prompts were prefilled whole at admission).
  std::vector<Running> decodes, still;
  for (auto& r : active_) {
    if (r.job->failed) continue;
    if (r.job->out->cancelled()) {
      Fail(r.job, 499, "cancelled", "client went away");
      continue;
    }
    (static_cast<int>(decodes.size()) < options_.max_batch ? decodes : still).push_back(r);
  }
  active_.clear();
  std::vector<Model::StepItem> items;
  std::vector<int32_t> tokens(decodes.size());
  for (size_t i = 0; i < decodes.size(); ++i) {
    const Choice& ch = decodes[i].job->choices[decodes[i].choice];
    tokens[i] = ch.result.tokens.back();
    items.push_back({ch.seq, std::span<const int32_t>(&tokens[i], 1)});
  }
  PagedKvCache& cache = model_->kv_cache();
  std::vector<std::shared_ptr<Job>> chunked;  // prefilling jobs in this step, in order
  std::vector<bool> completes;                // ... whose chunk ends the prompt
  int budget = options_.max_prefill_chunk;
  for (auto it = prefilling_.begin(); it != prefilling_.end() && budget > 0;) {
    const std::shared_ptr<Job>& job = *it;
    if (job->failed || job->out->cancelled()) {
      if (!job->failed) Fail(job, 499, "cancelled", "client went away");
      it = prefilling_.erase(it);
      continue;
    }
    const std::span<const int32_t> prompt = job->request.prompt;
    const int done = cache.NumTokens(job->seq);
    const int take = std::min<int>(budget, static_cast<int>(prompt.size()) - done);
    items.push_back({job->seq, prompt.subspan(done, take)});
    budget -= take;
    chunked.push_back(job);
    completes.push_back(done + take == static_cast<int>(prompt.size()));
    ++it;
  }
  if (items.empty()) {
    active_ = std::move(still);
    return;
  }
  auto logits = model_->Step(items);
  if (!logits.ok()) {
    spdlog::error("step over {} decodes and {} prefill chunks failed: {}", decodes.size(),
                  chunked.size(), logits.status().ToString());
    for (auto& r : decodes)
      if (!r.job->failed) Fail(r.job, 503, "decode_failed", logits.status().ToString());
    for (auto& job : chunked)
      if (!job->failed) Fail(job, 503, "prefill_failed", logits.status().ToString());
    std::erase_if(prefilling_, [](const std::shared_ptr<Job>& j) { return j->failed; });
    active_ = std::move(still);  // round-robin beyond max_batch: the ones left out go first
    return;
  }
  for (size_t i = 0; i < decodes.size(); ++i) {
    Job& job = *decodes[i].job;
    const int c = decodes[i].choice;
    EmitToken(job, c, job.choices[c].sampler->Sample((*logits)[i]), (*logits)[i]);
    if (!job.choices[c].done) {
      still.push_back(decodes[i]);
      continue;
    }
    FreeSequences(job);
    if (job.running == 0) Finish(decodes[i].job);
  }
  active_ = std::move(still);
  for (size_t j = 0; j < chunked.size(); ++j) {
    if (!completes[j]) continue;
    std::erase(prefilling_, chunked[j]);
    PublishLocal(chunked[j]);
    StartChoices(chunked[j], (*logits)[decodes.size() + j]);
  }
}

void Scheduler::Finish(const std::shared_ptr<Job>& job) {
  FreeSequences(*job);
  StreamEvent e;
  e.kind = StreamEvent::Kind::kDone;
  for (Choice& ch : job->choices) e.result.choices.push_back(std::move(ch.result));
  e.result.prompt_tokens = static_cast<int>(job->request.prompt.size());
  e.result.kv = job->kv;
  metrics_->ObserveE2e(Seconds(std::chrono::steady_clock::now() - job->out->arrival()));
  metrics_->RequestDone(true);
  metrics_->RunningDelta(-1);
  job->out->Push(std::move(e));
}

void Scheduler::Fail(const std::shared_ptr<Job>& job, int http_status, std::string type,
                     std::string message) {
  job->failed = true;
  ReleaseKvSlots(*job);
  // Only the worker frees sequences; Fail from other threads comes before admission.
  if (std::this_thread::get_id() == worker_.get_id()) FreeSequences(*job);
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
