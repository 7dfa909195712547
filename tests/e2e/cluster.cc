#include "cluster.h"

#include <signal.h>

#include <nlohmann/json.hpp>

#include "kvstore/engine/http_client.h"

namespace kvstore::testing {

std::unique_ptr<Cluster> Cluster::Start(const ClusterOptions& o, std::string* error) {
  auto c = std::make_unique<Cluster>();
  DaemonOptions d;
  d.args = o.kvstored_args;
  d.args.insert(d.args.end(), {"--memory", "256MiB"});
  c->store_ = TestDaemon::Start(d, error);
  if (!c->store_) return nullptr;
  const std::vector<std::string> store = {"--store", c->store_->address(), "--log-level", "warn"};
  auto with = [&](std::vector<std::string> a, const std::vector<std::string>& extra) {
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  if (o.both) {
    c->both_ = EngineProcess::Start(
        "both", with(with({"--role", "both", "--log-level", "warn"}, o.both_args), o.model_args),
        error);
    if (!c->both_) return nullptr;
  }
  if (o.prefill) {
    c->prefill_ = EngineProcess::Start(
        "prefill", with(with(with({"--role", "prefill"}, store), o.prefill_args), o.model_args),
        error);
    if (!c->prefill_) return nullptr;
  }
  if (o.decode) {
    c->decode_ = EngineProcess::Start(
        "decode", with(with(with({"--role", "decode"}, store), o.decode_args), o.model_args),
        error);
    if (!c->decode_) return nullptr;
  }
  if (o.proxy && c->prefill_ && c->decode_) {
    c->proxy_ = EngineProcess::Start("proxy",
                                     {"--role", "proxy", "--log-level", "warn", "--prefill",
                                      c->prefill_->url(), "--decode", c->decode_->url()},
                                     error);
    if (!c->proxy_) return nullptr;
  }
  return c;
}

bool Cluster::StopAll(std::string* error) {
  for (auto* p : {&proxy_, &decode_, &prefill_, &both_}) {
    if (!*p || !(*p)->running()) continue;  // a test may have killed it on purpose
    int code = (*p)->StopWith(SIGTERM);
    if (code != 0) {
      *error = "an engine exited with " + std::to_string(code) + " on SIGTERM: " + (*p)->Log();
      return false;
    }
  }
  int code = store_->StopWith(SIGTERM);
  if (code != 0) {
    *error = "kvstored exited with " + std::to_string(code) + ": " + store_->Log();
    return false;
  }
  return true;
}

Completion Complete(const std::string& url, const std::string& body, bool stream) {
  Completion c;
  if (stream) {
    auto r = engine::StreamCompletion(url, body);
    if (!r.ok()) {
      c.error = r.status().ToString();
      return c;
    }
    c.status = r->status;
    c.tokens = r->tokens;
    c.error = r->error;
    c.body = r->final_event;
    return c;
  }
  auto r = engine::HttpPost(url, "/v1/completions", body);
  if (!r.ok()) {
    c.error = r.status().ToString();
    return c;
  }
  c.status = r->status;
  c.body = r->body;
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (j.is_discarded()) {
    c.error = "answer is not JSON: " + r->body;
  } else if (j.contains("error")) {
    c.error = j["error"].value("message", r->body);
  } else {
    c.tokens = j["choices"][0]["token_ids"].get<std::vector<int32_t>>();
  }
  return c;
}

std::string TokenPromptBody(const std::vector<int32_t>& tokens, int max_tokens, float temperature,
                            uint64_t seed) {
  nlohmann::json j = {{"prompt", tokens},
                      {"max_tokens", max_tokens},
                      {"temperature", temperature},
                      {"seed", seed},
                      {"ignore_eos", true}};
  return j.dump();
}

double EngineMetric(const std::string& url, const std::string& name,
                    const std::string& labels_substring) {
  auto r = engine::HttpGet(url, "/metrics");
  if (!r.ok() || r->status != 200) return -1;
  return engine::MetricValue(r->body, name, labels_substring);
}

}  // namespace kvstore::testing
