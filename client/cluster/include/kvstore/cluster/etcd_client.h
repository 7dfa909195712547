// A small etcd v3 client: what kvstore's cluster membership needs (keys under a
// prefix, leases, a revision to notice changes), nothing more.
//
// It speaks etcd's v3 JSON gateway (HTTP/1.1 POST of JSON to /v3/kv/range,
// /v3/kv/put, /v3/kv/deleterange, /v3/lease/grant, /v3/lease/keepalive,
// /v3/lease/revoke; keys and values base64) over Boost.Beast, not gRPC:
// the gateway is part of etcd itself (every etcd since 3.3 serves it on the
// client port), it needs no protobuf/gRPC code generation in our build and no
// further dependencies (Beast is in Boost, JSON in nlohmann_json, both already
// used), and membership traffic is a handful of small requests a second, where
// gRPC's efficiency buys nothing. Changes arrive on a streaming watch
// (EtcdWatch, the gateway's /v3/watch), each followed by a full re-read of the
// range; polling the range is the fallback while the watch cannot be opened.
//
// Endpoints are tried in order; a failed one moves the client to the next, so
// a multi-member etcd keeps working while one member is down.
//
// Thread-safety: thread-safe; calls are serialized on one keep-alive connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kvstore/status.h"

namespace kvstore::cluster {

struct EtcdOptions {
  std::vector<std::string> endpoints;               // HOST:PORT of etcd members, tried in order
  std::chrono::milliseconds request_timeout{2000};  // per request, connect included
};

struct EtcdKeyValue {
  std::string key;
  std::string value;
  int64_t lease = 0;  // 0 = none
  int64_t mod_revision = 0;
};

struct EtcdRange {
  std::vector<EtcdKeyValue> kvs;
  int64_t revision = 0;  // the store's revision when the range was read
};

class EtcdClient {
 public:
  // Never fails: connections open on the first request (etcd may be down now).
  // REQUIRES: options.endpoints is not empty.
  explicit EtcdClient(EtcdOptions options);
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  // Every key starting with `prefix`.
  Result<EtcdRange> RangePrefix(const std::string& prefix);
  // One key; NotFound when absent.
  Result<EtcdKeyValue> Get(const std::string& key);
  // lease 0 = no lease. Returns the revision after the put.
  Result<int64_t> Put(const std::string& key, const std::string& value, int64_t lease = 0);
  // Deletes `key`, or every key starting with it when `prefix`; returns how many.
  Result<int64_t> Delete(const std::string& key, bool prefix = false);

  // A lease of `ttl` (etcd may round it up); returns its id.
  Result<int64_t> LeaseGrant(std::chrono::seconds ttl);
  // Refreshes the lease; returns the remaining TTL, NotFound when the lease has expired.
  Result<std::chrono::seconds> LeaseKeepAlive(int64_t lease);
  Status LeaseRevoke(int64_t lease);

  const EtcdOptions& options() const { return options_; }

 private:
  class Connection;
  // POSTs `body` to `path` on the current endpoint, moving to the next one on
  // a transport failure; returns the response body (JSON).
  Result<std::string> Post(const std::string& path, const std::string& body);

  EtcdOptions options_;
  std::mutex mu_;
  size_t current_ = 0;                // GUARDED_BY(mu_): index into endpoints
  std::unique_ptr<Connection> conn_;  // GUARDED_BY(mu_)
};

// One response of a watch stream.
struct EtcdWatchResponse {
  int64_t revision = 0;  // the store's revision when etcd sent it
  size_t events = 0;     // changed keys under the prefix (0: the stream's creation)
};

// A streaming watch of every key under a prefix (the gateway's POST /v3/watch:
// one HTTP response whose chunked body carries a JSON message per change), on
// its own connection. Run blocks its thread for the life of the stream; Stop
// ends it from any other thread.
//
// Thread-safety: Run from one thread at a time; Stop from any thread.
class EtcdWatch {
 public:
  // REQUIRES: options.endpoints is not empty.
  explicit EtcdWatch(EtcdOptions options);
  ~EtcdWatch();
  EtcdWatch(const EtcdWatch&) = delete;
  EtcdWatch& operator=(const EtcdWatch&) = delete;

  // Watches `prefix` from `start_revision` and calls `on_response` for each
  // response, until the stream ends: Unavailable when etcd cannot be reached
  // or the connection breaks (the next Run tries the next endpoint), NotFound
  // when etcd cancelled the watch (e.g. start_revision was compacted: re-read
  // and watch again), Ok only after Stop.
  Status Run(const std::string& prefix, int64_t start_revision,
             const std::function<void(const EtcdWatchResponse&)>& on_response);
  // Ends the current Run and every later one. Thread-safe.
  void Stop();

 private:
  EtcdOptions options_;
  std::mutex mu_;
  bool stopped_ = false;  // GUARDED_BY(mu_)
  int socket_ = -1;       // GUARDED_BY(mu_): the stream's fd while Run reads, for Stop
  size_t current_ = 0;    // Run's thread only: index into endpoints
};

// The end of a prefix range: `prefix` with its last byte incremented (etcd's rule).
std::string PrefixRangeEnd(const std::string& prefix);
std::string Base64Encode(std::string_view bytes);
Result<std::string> Base64Decode(std::string_view text);

}  // namespace kvstore::cluster
