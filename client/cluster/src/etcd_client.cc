#include "kvstore/cluster/etcd_client.h"

#include <cassert>
#include <cstring>
#include <utility>  // before Asio (Boost 1.74 under C++20)

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "etcd_internal.h"
#include "kvstore/cluster/etcd_decode.h"

namespace kvstore::cluster {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using json = nlohmann::json;
using detail::SplitEndpoint;

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

std::string Base64Encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

Result<std::string> Base64Decode(std::string_view in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    const char* p = std::strchr(kAlphabet, c);
    if (c == '\0' || p == nullptr) {
      return Status::InvalidArgument("etcd returned invalid base64");
    }
    acc = (acc << 6) | uint32_t(p - kAlphabet);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((acc >> bits) & 0xff);
    }
  }
  return out;
}

std::string PrefixRangeEnd(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    if (static_cast<uint8_t>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<uint8_t>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

// One keep-alive HTTP connection to one etcd endpoint.
class EtcdClient::Connection {
 public:
  Connection(std::string endpoint, std::chrono::milliseconds timeout)
      : endpoint_(std::move(endpoint)), timeout_(timeout), stream_(io_) {}

  Status Open() {
    std::string host, port;
    KVSTORE_RETURN_IF_ERROR(SplitEndpoint(endpoint_, &host, &port));
    asio::ip::tcp::resolver resolver(io_);
    beast::error_code ec;
    auto results = resolver.resolve(host, port, ec);
    if (ec) return Status::Unavailable("etcd at " + endpoint_ + ": resolve: " + ec.message());
    stream_.expires_after(timeout_);
    stream_.connect(results, ec);
    if (ec) return Status::Unavailable("etcd at " + endpoint_ + ": connect: " + ec.message());
    return Status::Ok();
  }

  Result<std::string> Post(const std::string& path, const std::string& body) {
    http::request<http::string_body> req{http::verb::post, path, 11};
    req.set(http::field::host, endpoint_);
    req.set(http::field::content_type, "application/json");
    req.keep_alive(true);
    req.body() = body;
    req.prepare_payload();
    beast::error_code ec;
    stream_.expires_after(timeout_);
    http::write(stream_, req, ec);
    if (ec) return Status::Unavailable("etcd at " + endpoint_ + ": send: " + ec.message());
    http::response<http::string_body> res;
    buffer_.clear();
    http::read(stream_, buffer_, res, ec);
    if (ec) return Status::Unavailable("etcd at " + endpoint_ + ": receive: " + ec.message());
    if (!res.keep_alive()) broken_ = true;
    if (res.result() != http::status::ok) {
      // A well-formed refusal (bad request, lease not found) from a live etcd.
      std::string msg = res.body();
      try {
        auto j = json::parse(msg);
        if (j.contains("message")) msg = j["message"].get<std::string>();
        if (j.contains("error")) msg = j["error"].get<std::string>();
      } catch (const std::exception&) {
      }
      if (msg.find("not found") != std::string::npos) {
        return Status::NotFound("etcd at " + endpoint_ + " " + path + ": " + msg);
      }
      return Status::InvalidArgument("etcd at " + endpoint_ + " " + path + ": HTTP " +
                                     std::to_string(res.result_int()) + ": " + msg);
    }
    return std::move(res.body());
  }

  bool broken() const { return broken_; }
  void MarkBroken() { broken_ = true; }

 private:
  std::string endpoint_;
  std::chrono::milliseconds timeout_;
  asio::io_context io_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  bool broken_ = false;
};

EtcdClient::EtcdClient(EtcdOptions options) : options_(std::move(options)) {
  assert(!options_.endpoints.empty());
}
EtcdClient::~EtcdClient() = default;

Result<std::string> EtcdClient::Post(const std::string& path, const std::string& body) {
  std::lock_guard lock(mu_);
  Status last;
  // Each endpoint once, starting with the one that worked last.
  for (size_t attempt = 0; attempt < options_.endpoints.size(); ++attempt) {
    if (conn_ == nullptr || conn_->broken()) {
      conn_ = std::make_unique<Connection>(options_.endpoints[current_], options_.request_timeout);
      Status opened = conn_->Open();
      if (!opened.ok()) {
        last = opened;
        conn_.reset();
        current_ = (current_ + 1) % options_.endpoints.size();
        continue;
      }
    }
    auto r = conn_->Post(path, body);
    if (r.ok() || r.status().code() != StatusCode::kUnavailable) return r;
    last = r.status();
    conn_.reset();
    current_ = (current_ + 1) % options_.endpoints.size();
  }
  return last;
}

Result<EtcdRange> EtcdClient::RangePrefix(const std::string& prefix) {
  json req = {{"key", Base64Encode(prefix)}, {"range_end", Base64Encode(PrefixRangeEnd(prefix))}};
  KVSTORE_ASSIGN_OR_RETURN(std::string body, Post("/v3/kv/range", req.dump()));
  return DecodeEtcdRangeReply(body);
}

Result<EtcdKeyValue> EtcdClient::Get(const std::string& key) {
  json req = {{"key", Base64Encode(key)}};
  KVSTORE_ASSIGN_OR_RETURN(std::string body, Post("/v3/kv/range", req.dump()));
  KVSTORE_ASSIGN_OR_RETURN(EtcdRange range, DecodeEtcdRangeReply(body));
  if (range.kvs.empty()) return Status::NotFound("etcd: no key " + key);
  return std::move(range.kvs.front());
}

Result<int64_t> EtcdClient::Put(const std::string& key, const std::string& value, int64_t lease) {
  json req = {{"key", Base64Encode(key)}, {"value", Base64Encode(value)}};
  if (lease != 0) req["lease"] = std::to_string(lease);
  KVSTORE_ASSIGN_OR_RETURN(std::string body, Post("/v3/kv/put", req.dump()));
  return DecodeEtcdPutReply(body);
}

Result<int64_t> EtcdClient::Delete(const std::string& key, bool prefix) {
  json req = {{"key", Base64Encode(key)}};
  if (prefix) req["range_end"] = Base64Encode(PrefixRangeEnd(key));
  KVSTORE_ASSIGN_OR_RETURN(std::string body, Post("/v3/kv/deleterange", req.dump()));
  return DecodeEtcdDeleteReply(body);
}

Result<int64_t> EtcdClient::LeaseGrant(std::chrono::seconds ttl) {
  json req = {{"TTL", std::to_string(ttl.count())}};
  KVSTORE_ASSIGN_OR_RETURN(std::string body, Post("/v3/lease/grant", req.dump()));
  return DecodeEtcdLeaseGrantReply(body);
}

Result<std::chrono::seconds> EtcdClient::LeaseKeepAlive(int64_t lease) {
  json req = {{"ID", std::to_string(lease)}};
  // A streaming call in gRPC; through the gateway one request gets one result
  // (a JSON line), after which etcd ends the response.
  auto r = Post("/v3/lease/keepalive", req.dump());
  KVSTORE_RETURN_IF_ERROR(r.status());
  {
    // The stream's end leaves the connection unusable for the next request.
    std::lock_guard lock(mu_);
    if (conn_) conn_->MarkBroken();
  }
  KVSTORE_ASSIGN_OR_RETURN(int64_t ttl, DecodeEtcdLeaseKeepAliveReply(*r));
  if (ttl <= 0) return Status::NotFound("etcd lease " + std::to_string(lease) + " has expired");
  return std::chrono::seconds(ttl);
}

Status EtcdClient::LeaseRevoke(int64_t lease) {
  json req = {{"ID", std::to_string(lease)}};
  auto r = Post("/v3/lease/revoke", req.dump());
  if (!r.ok() && r.status().code() == StatusCode::kNotFound) return Status::Ok();  // gone already
  return r.status();
}

}  // namespace kvstore::cluster
