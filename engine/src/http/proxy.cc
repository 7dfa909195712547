#include "kvstore/engine/proxy.h"

#include <algorithm>
#include <chrono>
#include <limits>

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <nlohmann/json.hpp>

#include "kvstore/engine/completion_api.h"
#include "kvstore/engine/completion_handler.h"

namespace kvstore::engine {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::use_awaitable;
using nlohmann::json;
using tcp = asio::ip::tcp;

Status ParseHttpUrl(std::string_view url, std::string* host, std::string* port) {
  std::string_view u = url;
  if (u.substr(0, 7) == "http://") u.remove_prefix(7);
  if (u.substr(0, 8) == "https://")
    return Status::InvalidArgument(std::string(url) + ": https is not supported; use http://");
  if (auto slash = u.find('/'); slash != std::string_view::npos) u = u.substr(0, slash);
  auto colon = u.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == u.size())
    return Status::InvalidArgument("\"" + std::string(url) + "\": expected http://HOST:PORT");
  *host = std::string(u.substr(0, colon));
  *port = std::string(u.substr(colon + 1));
  return Status::Ok();
}

Result<std::unique_ptr<Proxy>> Proxy::Create(const EngineOptions& options, EngineMetrics* metrics) {
  std::unique_ptr<Proxy> p(new Proxy(options, metrics));
  for (auto [urls, out, flag] : {std::tuple{&options.prefill_urls, &p->prefill_, "--prefill"},
                                 std::tuple{&options.decode_urls, &p->decode_, "--decode"}}) {
    if (urls->empty())
      return Status::InvalidArgument(std::string("--role proxy needs ") + flag + " URL[,URL...]");
    for (const std::string& url : *urls) {
      Upstream u{url, "", ""};
      KVSTORE_RETURN_IF_ERROR(ParseHttpUrl(url, &u.host, &u.port).WithContext(flag));
      out->push_back(std::move(u));
    }
  }
  return p;
}

asio::awaitable<void> Proxy::Handle(HttpRequest& req, HttpResponder& res) {
  std::string_view target(req.target().data(), req.target().size());
  if (co_await HandleRouteErrors(req, res)) co_return;
  if (co_await HandleCommonRoutes(req, res, metrics_, Status::Ok(), Role::kProxy)) co_return;
  if (target == "/v1/models") {
    co_await Models(res);
    co_return;
  }
  co_await Complete(req, res, std::string(target));
}

namespace {

// Opens a connection to an upstream and sends one POST; the caller reads.
asio::awaitable<void> Post(beast::tcp_stream& stream, const std::string& host,
                           const std::string& port, const std::string& path,
                           const std::string& body, std::chrono::milliseconds timeout,
                           http::verb method = http::verb::post) {
  tcp::resolver resolver(co_await asio::this_coro::executor);
  auto endpoints = co_await resolver.async_resolve(host, port, use_awaitable);
  stream.expires_after(timeout);
  co_await stream.async_connect(endpoints, use_awaitable);
  stream.socket().set_option(tcp::no_delay(true));
  http::request<http::string_body> req{method, path, 11};
  req.set(http::field::host, host + ":" + port);
  req.set(http::field::content_type, "application/json");
  req.keep_alive(false);
  req.body() = body;
  req.prepare_payload();
  co_await http::async_write(stream, req, use_awaitable);
}

// The body prefill gets: the same prompt, one choice, one token, no stream
// and nothing that only shapes the answer.
json PrefillBody(const json& body) {
  json p = body;
  p["max_tokens"] = 1;
  p["stream"] = false;
  p["n"] = 1;
  for (const char* k :
       {"max_completion_tokens", "stream_options", "echo", "logprobs", "top_logprobs", "best_of"})
    p.erase(k);
  return p;
}

// Sets kv_transfer_params.<name> for the decode, keeping what else the
// request carries there (a malformed one is left for the decode to refuse).
void SetKvParam(json& body, const char* name, json value) {
  json& k = body["kv_transfer_params"];
  if (k.is_null()) k = json::object();
  if (k.is_object()) k[name] = std::move(value);
}

// kv_transfer_params.remote_store_node of a prefill answer ("" when absent).
std::string RemoteStoreNode(const std::string& answer) {
  json j = json::parse(answer, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("kv_transfer_params")) return "";
  const json& k = j["kv_transfer_params"];
  if (!k.is_object() || !k.contains("remote_store_node") || !k["remote_store_node"].is_string())
    return "";
  return k["remote_store_node"].get<std::string>();
}

}  // namespace

asio::awaitable<void> Proxy::Models(HttpResponder& res) {
  const Upstream& d = decode_[next_decode_.fetch_add(1) % decode_.size()];
  std::string error;
  http::response<http::string_body> r;
  try {
    beast::tcp_stream stream(co_await asio::this_coro::executor);
    co_await Post(stream, d.host, d.port, "/v1/models", "", options_.upstream_timeout,
                  http::verb::get);
    beast::flat_buffer buf;
    co_await http::async_read(stream, buf, r, use_awaitable);
  } catch (const boost::system::system_error& e) {
    error = e.what();
  }
  if (error.empty()) {
    co_await res.Send(r.result(), "application/json", r.body());
    co_return;
  }
  metrics_->UpstreamError("decode");
  co_await res.Send(
      http::status::bad_gateway, "application/json",
      ErrorJson("decode engine " + d.url + " failed: " + error + "; check that it is running",
                "upstream_error", 502));
}

asio::awaitable<Proxy::PrefillAnswer> Proxy::CallPrefill(size_t index, std::string path,
                                                         std::string body) {
  const Upstream& p = prefill_[index];
  PrefillAnswer a;
  try {
    beast::tcp_stream stream(co_await asio::this_coro::executor);
    co_await Post(stream, p.host, p.port, path, body, options_.upstream_timeout);
    beast::flat_buffer buf;
    http::response<http::string_body> pres;
    co_await http::async_read(stream, buf, pres, use_awaitable);
    a.status = pres.result_int();
    a.ok = pres.result() == http::status::ok;
    a.body = pres.body();
    if (!a.ok) a.error = "HTTP " + std::to_string(a.status) + ": " + a.body;
    if (a.ok) {
      a.kv_node = RemoteStoreNode(a.body);
      std::lock_guard lock(kv_nodes_mu_);
      prefill_kv_node_[index] = a.kv_node;
    }
  } catch (const boost::system::system_error& e) {
    a.error = e.what();
  }
  co_return a;
}

asio::awaitable<std::string> Proxy::PrefillNode(size_t index) {
  {
    std::lock_guard lock(kv_nodes_mu_);
    if (auto it = prefill_kv_node_.find(index); it != prefill_kv_node_.end()) co_return it->second;
  }
  const Upstream& p = prefill_[index];
  std::string error;
  try {
    beast::tcp_stream stream(co_await asio::this_coro::executor);
    co_await Post(stream, p.host, p.port, "/health", "", options_.upstream_timeout,
                  http::verb::get);
    beast::flat_buffer buf;
    http::response<http::string_body> r;
    co_await http::async_read(stream, buf, r, use_awaitable);
    json j = json::parse(r.body(), nullptr, /*allow_exceptions=*/false);
    if (r.result() == http::status::ok && j.is_object()) {
      std::string node;
      if (auto it = j.find("store_node"); it != j.end() && it->is_string()) node = *it;
      std::lock_guard lock(kv_nodes_mu_);
      prefill_kv_node_.emplace(index, node);
      co_return node;
    }
    error = "HTTP " + std::to_string(r.result_int()) + ": " + r.body();
  } catch (const boost::system::system_error& e) {
    error = e.what();
  }
  spdlog::warn(
      "prefill engine {}: GET /health failed ({}); its store node is unknown, so this "
      "--overlap decode may miss the KV under local placement",
      p.url, error);
  co_return std::string();
}

asio::awaitable<void> Proxy::PrefillInBackground(size_t index, std::string path, std::string body) {
  const Upstream& p = prefill_[index];
  PrefillAnswer a = co_await CallPrefill(index, std::move(path), std::move(body));
  if (!a.ok) {
    metrics_->UpstreamError("prefill");
    spdlog::warn("prefill engine {} failed ({}); its decode will miss the KV", p.url, a.error);
  }
}

asio::awaitable<void> Proxy::Complete(HttpRequest& req, HttpResponder& res, std::string path) {
  json body = json::parse(req.body(), nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    ApiError e;
    e.message = "request body is not a JSON object";
    co_await res.Send(http::status::bad_request, "application/json", ErrorJson(e));
    co_return;
  }
  const auto arrival = std::chrono::steady_clock::now();
  metrics_->RunningDelta(1);
  struct RunningGuard {
    EngineMetrics* m;
    ~RunningGuard() { m->RunningDelta(-1); }
  } guard{metrics_};

  // 1. prefill, max_tokens=1, once per prompt of the request.
  const bool chat = path == "/v1/chat/completions";
  std::vector<json> pbodies;
  const json& prompt = body.contains("prompt") ? body["prompt"] : json();
  if (!chat && prompt.is_array() && !prompt.empty() &&
      (prompt[0].is_string() || prompt[0].is_array())) {
    for (const json& one : prompt) {
      json p = PrefillBody(body);
      p["prompt"] = one;
      pbodies.push_back(std::move(p));
    }
  } else {
    pbodies.push_back(PrefillBody(body));
  }
  // Per prompt: the store node its prefill put the KV on (a cluster's local
  // placement), passed to the decode in kv_transfer_params; "" = not said.
  std::vector<std::string> kv_nodes;
  for (const json& pbody : pbodies) {
    const size_t pi = next_prefill_.fetch_add(1) % prefill_.size();
    const Upstream& p = prefill_[pi];
    if (options_.proxy_overlap) {
      // Decode goes out now and its drop_select waits for the blocks as they
      // land; the prefill answer is only logged. Its node is this prefill
      // engine's, learnt from its /health before its first request.
      kv_nodes.push_back(co_await PrefillNode(pi));
      asio::co_spawn(co_await asio::this_coro::executor,
                     PrefillInBackground(pi, path, DumpJson(pbody)), asio::detached);
      continue;
    }
    PrefillAnswer a = co_await CallPrefill(pi, path, DumpJson(pbody));
    kv_nodes.push_back(a.kv_node);
    if (a.status >= 400 && a.status < 500) {  // the client's error: pass it on
      co_await res.Send(static_cast<http::status>(a.status), "application/json", a.body);
      metrics_->RequestDone(false);
      co_return;
    }
    if (!a.ok) {
      metrics_->UpstreamError("prefill");
      spdlog::warn(
          "prefill engine {} failed ({}); sending the request to decode with "
          "remote_prefill=false so it applies its --on-kv-miss policy",
          p.url, a.error);
      SetKvParam(body, "remote_prefill", false);
    }
  }
  if (std::any_of(kv_nodes.begin(), kv_nodes.end(), [](const auto& n) { return !n.empty(); })) {
    const bool same = std::all_of(kv_nodes.begin(), kv_nodes.end(),
                                  [&](const auto& n) { return n == kv_nodes[0]; });
    SetKvParam(body, "remote_store_node", same ? json(kv_nodes[0]) : json(kv_nodes));
  }

  // 2. decode: relay its answer as it arrives.
  const Upstream& d = decode_[next_decode_.fetch_add(1) % decode_.size()];
  bool started = false;
  bool first = true;
  std::string decode_error;
  try {
    beast::tcp_stream stream(co_await asio::this_coro::executor);
    co_await Post(stream, d.host, d.port, path, DumpJson(body), options_.upstream_timeout);
    beast::flat_buffer buf;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    co_await http::async_read_header(stream, buf, parser, use_awaitable);
    const auto status = parser.get().result();
    std::string content_type(parser.get()[http::field::content_type]);
    if (content_type.empty()) content_type = "application/json";
    const bool chunked = parser.get().chunked();
    std::string whole;
    char piece[16384];
    while (!parser.is_done()) {
      parser.get().body().data = piece;
      parser.get().body().size = sizeof(piece);
      boost::system::error_code ec;
      // read_some: relay each event as it arrives, not when the buffer fills.
      co_await http::async_read_some(stream, buf, parser, asio::redirect_error(use_awaitable, ec));
      if (ec == http::error::need_buffer) ec = {};
      if (ec) throw boost::system::system_error(ec);
      size_t n = sizeof(piece) - parser.get().body().size;
      if (n == 0) continue;
      if (first) {
        first = false;
        metrics_->ObserveTtft(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - arrival).count());
      }
      if (chunked) {
        if (!started) {
          co_await res.BeginChunked(status, content_type);
          started = true;
        }
        co_await res.Chunk(std::string_view(piece, n));
      } else {
        whole.append(piece, n);
      }
    }
    if (chunked) {
      if (!started) co_await res.BeginChunked(status, content_type);
      co_await res.EndChunked();
    } else {
      co_await res.Send(status, content_type, std::move(whole));
    }
    metrics_->RequestDone(status == http::status::ok);
    metrics_->ObserveE2e(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - arrival).count());
  } catch (const boost::system::system_error& e) {
    decode_error = e.what();
  }
  if (decode_error.empty()) co_return;
  metrics_->UpstreamError("decode");
  metrics_->RequestDone(false);
  spdlog::warn("decode engine {} failed: {}", d.url, decode_error);
  if (started) throw std::runtime_error("decode failed mid-stream");  // only closing is left
  co_await res.Send(http::status::bad_gateway, "application/json",
                    ErrorJson("decode engine " + d.url + " failed: " + decode_error +
                                  "; check that it is running",
                              "upstream_error", 502));
}

}  // namespace kvstore::engine
