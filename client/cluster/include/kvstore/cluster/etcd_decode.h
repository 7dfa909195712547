// Decoding of the etcd v3 JSON gateway's replies, as pure functions of the
// reply's text: what EtcdClient and EtcdWatch read, testable and fuzzable
// without an etcd. Every malformed reply is a Status naming the field (never an
// exception, never an undefined conversion: a float, a string that is not a
// decimal int64 or a number outside int64 is refused, not converted).
#pragma once

#include <cstdint>
#include <string_view>

#include "kvstore/cluster/etcd_client.h"
#include "kvstore/status.h"

namespace kvstore::cluster {

// POST /v3/kv/range: header.revision and every kvs[] (key/value base64,
// lease, mod_revision). A reply without kvs is an empty range.
Result<EtcdRange> DecodeEtcdRangeReply(std::string_view body);

// POST /v3/kv/put (and any reply whose figure is header.revision).
Result<int64_t> DecodeEtcdPutReply(std::string_view body);

// POST /v3/kv/deleterange: the number of keys deleted.
Result<int64_t> DecodeEtcdDeleteReply(std::string_view body);

// POST /v3/lease/grant: the lease id (non-zero). A reply carrying "error" is
// Unavailable with etcd's message.
Result<int64_t> DecodeEtcdLeaseGrantReply(std::string_view body);

// POST /v3/lease/keepalive: the first JSON line's TTL in seconds, bare or under
// "result". 0 or less means the lease has expired (the caller decides).
Result<int64_t> DecodeEtcdLeaseKeepAliveReply(std::string_view body);

// One JSON message of a watch stream (a line, bare or under "result").
// InvalidArgument: not a JSON object (the stream skips it); NotFound: etcd
// failed or cancelled the watch (an "error", "canceled" or a compaction).
Result<EtcdWatchResponse> DecodeEtcdWatchMessage(std::string_view line);

}  // namespace kvstore::cluster
