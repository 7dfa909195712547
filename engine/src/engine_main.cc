// kvstore-engine: one program for every role of disaggregated serving.
//   kvstore-engine --role both    --listen 127.0.0.1:8100
//   kvstore-engine --role prefill --listen 127.0.0.1:8101 --store 127.0.0.1:7400
//   kvstore-engine --role decode  --listen 127.0.0.1:8102 --store 127.0.0.1:7400
//   kvstore-engine --role proxy   --listen 127.0.0.1:8000
//                  --prefill http://127.0.0.1:8101 --decode http://127.0.0.1:8102
#include <utility>  // before Asio: Boost 1.74 under C++20 needs std::exchange

#include <csignal>
#include <iostream>
#include <thread>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "kvstore/engine/completion_handler.h"
#include "kvstore/engine/engine_metrics.h"
#include "kvstore/engine/engine_options.h"
#include "kvstore/engine/http_server.h"
#include "kvstore/engine/proxy.h"
#include "kvstore/engine/scheduler.h"
#include "kvstore/units.h"

namespace asio = boost::asio;
using namespace kvstore;
using namespace kvstore::engine;

int main(int argc, char** argv) {
  EngineOptions o;
  std::string role = "both", on_kv_miss = "recompute", kv_timeout = "10s", kv_ttl = "0";
  std::string log_level = "info";
  CLI::App app{
      "kvstore-engine: an LLM engine for disaggregated serving through kvstored.\n"
      "Roles: 'prefill' computes a prompt's KV and inserts it into kvstored block by block;\n"
      "'decode' drop_selects it, computes the partial tail and generates; 'both' is a plain\n"
      "single engine (with a local prefix cache); 'proxy' sends each request to a prefill engine "
      "(max_tokens=1), then to a\n"
      "decode engine, and streams the decode's answer back.\n"
      "HTTP (OpenAI-style): POST /v1/completions, POST /v1/chat/completions, GET /v1/models;\n"
      "GET /health, GET /metrics (Prometheus)."};
  app.add_option("--role", role, "prefill | decode | both | proxy")->capture_default_str();
  app.add_option("--listen", o.listen, "HTTP address HOST:PORT (port 0 picks a free one)")
      ->capture_default_str();
  app.add_option("--store", o.store, "kvstored address HOST:PORT (prefill, decode)")
      ->capture_default_str();
  app.add_option("--model", o.model,
                 "'builtin' (the tiny random-weight Llama) or a Hugging Face checkpoint dir")
      ->capture_default_str();
  app.add_option("--model-seed", o.model_seed, "weights seed of the builtin model")
      ->capture_default_str();
  app.add_option("--model-name", o.model_name, "'model' field in answers")->capture_default_str();
  app.add_option("--prefill", o.prefill_urls, "proxy: prefill engine URL[,URL...] (round-robin)")
      ->delimiter(',');
  app.add_option("--decode", o.decode_urls, "proxy: decode engine URL[,URL...] (round-robin)")
      ->delimiter(',');
  app.add_flag("--overlap", o.proxy_overlap,
               "proxy: send the decode request at once instead of after prefill's answer; decode "
               "waits in drop_select while prefill inserts");
  std::string upstream_timeout = "300s";
  app.add_option("--upstream-timeout", upstream_timeout, "proxy: limit per upstream request")
      ->capture_default_str();
  app.add_option("--on-kv-miss", on_kv_miss,
                 "decode: when KV does not arrive in time or is corrupt, 'recompute' it locally "
                 "or 'fail' the request (HTTP 503/504)")
      ->capture_default_str();
  app.add_option("--kv-timeout", kv_timeout, "decode: how long drop_select waits for the KV")
      ->capture_default_str();
  app.add_option("--kv-transport", o.kv_transport,
                 "how KV bytes move: auto (local on the store's host, else rdma with a device, "
                 "else tcp), tcp, local or rdma")
      ->check(CLI::IsMember({"auto", "tcp", "local", "rdma"}))
      ->capture_default_str();
  app.add_option("--kv-ttl", kv_ttl,
                 "prefill: TTL of inserted blocks (e.g. 30s); 0 = the store's default")
      ->capture_default_str();
  app.add_option("--threads", o.threads, "CPU threads of the model")->capture_default_str();
  app.add_option("--io-threads", o.io_threads, "HTTP I/O threads")->capture_default_str();
  app.add_option("--kv-cache-blocks", o.kv_cache_blocks, "paged KV cache size, in blocks")
      ->capture_default_str();
  app.add_option("--prefill-chunk-blocks", o.prefill_chunk_blocks,
                 "prefill: blocks computed per step; each step's blocks are inserted while the "
                 "next computes")
      ->capture_default_str();
  app.add_option("--kv-staging-mib", o.kv_staging_mib,
                 "prefill, decode: MiB of memory registered once with libkvstore for KV blocks "
                 "(zero-copy InsertFromRegion / DropSelectIntoRegions); 0: plain buffers")
      ->capture_default_str();
  app.add_option("--kv-load-threads", o.kv_load_threads, "decode: concurrent drop_selects")
      ->capture_default_str();
  app.add_option("--max-batch", o.max_batch, "sequences per decode step")->capture_default_str();
  app.add_option("--max-prefill-chunk", o.max_prefill_chunk,
                 "both: chunked prefill -- prompt tokens computed per step, in the same forward "
                 "pass as the running decodes (0: each prompt whole, before the next step)")
      ->capture_default_str();
  app.add_option("--chat-template", o.chat_template,
                 "/v1/chat/completions prompt format: auto (by the vocabulary's special tokens) | "
                 "llama3 | chatml | plain (engine/README.md)")
      ->capture_default_str();
  app.add_option("--max-tokens-limit", o.max_tokens_limit, "largest max_tokens accepted")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace | debug | info | warn | error")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  spdlog::set_level(spdlog::level::from_str(log_level));
  auto fail = [](const Status& s) {
    spdlog::error("{}", s.ToString());
    return 2;
  };
  auto r = ParseRole(role);
  if (!r.ok()) return fail(r.status());
  o.role = *r;
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ kvstore-engine[" +
                      std::string(RoleName(o.role)) + "]: %v");
  auto p = ParseKvMissPolicy(on_kv_miss);
  if (!p.ok()) return fail(p.status());
  o.on_kv_miss = *p;
  auto kt = ParseDuration(kv_timeout);
  if (!kt.ok()) return fail(kt.status().WithContext("--kv-timeout"));
  o.kv_timeout = *kt;
  auto tt = ParseDuration(kv_ttl);
  if (!tt.ok()) return fail(tt.status().WithContext("--kv-ttl"));
  o.kv_ttl = *tt;
  auto ut = ParseDuration(upstream_timeout);
  if (!ut.ok()) return fail(ut.status().WithContext("--upstream-timeout"));
  o.upstream_timeout = *ut;
  if (o.threads < 1 || o.io_threads < 1 || o.kv_load_threads < 1 || o.max_batch < 1 ||
      o.prefill_chunk_blocks < 1 || o.kv_cache_blocks < 1)
    return fail(Status::InvalidArgument(
        "--threads, --io-threads, --kv-load-threads, --max-batch, --prefill-chunk-blocks and "
        "--kv-cache-blocks must be >= 1"));

  EngineMetrics metrics(std::string(RoleName(o.role)));
  std::unique_ptr<Scheduler> scheduler;
  std::unique_ptr<CompletionHandler> completions;
  std::unique_ptr<Proxy> proxy;
  HttpHandler handler;
  if (o.role == Role::kProxy) {
    auto px = Proxy::Create(o, &metrics);
    if (!px.ok()) return fail(px.status());
    proxy = std::move(px).value();
    handler = [&](HttpRequest& req, HttpResponder& res) { return proxy->Handle(req, res); };
  } else {
    auto s = Scheduler::Create(o, &metrics);
    if (!s.ok()) return fail(s.status());
    scheduler = std::move(s).value();
    completions = std::make_unique<CompletionHandler>(o, scheduler.get(), &metrics);
    handler = [&](HttpRequest& req, HttpResponder& res) { return completions->Handle(req, res); };
  }

  asio::io_context ioc(o.io_threads);
  auto server = HttpServer::Create(ioc, o.listen, handler);
  if (!server.ok()) return fail(server.status());
  (*server)->Start();
  asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: stopping", sig);
    (*server)->Stop();
    ioc.stop();
  });
  std::signal(SIGPIPE, SIG_IGN);
  spdlog::info("{} listening on http://{}:{}", RoleName(o.role),
               o.listen.substr(0, o.listen.rfind(':')), (*server)->port());
  std::vector<std::thread> threads;
  for (int i = 1; i < o.io_threads; ++i) threads.emplace_back([&] { ioc.run(); });
  ioc.run();
  for (auto& t : threads) t.join();
  scheduler.reset();  // fails what is still queued, joins the worker and loaders
  spdlog::info("stopped");
  return 0;
}
