#include "kvstore/cluster/etcd_decode.h"

#include <charconv>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

namespace kvstore::cluster {

namespace {

using json = nlohmann::json;

Result<json> ParseObject(std::string_view body, const char* what) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::Internal(std::string(what) + " is not JSON");
  if (!j.is_object()) {
    return Status::Internal(std::string(what) + " is not a JSON object: " + j.dump());
  }
  return j;
}

// An int64 field, absent or null = 0. The gateway writes int64s as decimal
// strings ("revision":"12"); an integer number is accepted too. A float, a
// number past int64 or a string that is not all decimal digits is refused.
Result<int64_t> IntField(const json& j, const char* field, const char* what) {
  if (!j.is_object()) {
    return Status::Internal(std::string(what) + ": the object holding \"" + field +
                            "\" is not a JSON object");
  }
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return int64_t{0};
  auto refuse = [&] {
    return Status::Internal(std::string(what) + ": \"" + field +
                            "\" is not an int64: " + it->dump());
  };
  if (it->is_number_integer() && !it->is_number_unsigned()) return it->get<int64_t>();
  if (it->is_number_unsigned()) {
    uint64_t u = it->get<uint64_t>();
    if (u > uint64_t(INT64_MAX)) return refuse();
    return int64_t(u);
  }
  if (!it->is_string()) return refuse();
  const std::string& s = it->get_ref<const std::string&>();
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return refuse();
  return v;
}

Result<std::string> Base64Field(const json& kv, const char* field, const char* what) {
  auto it = kv.find(field);
  if (it == kv.end() || it->is_null()) return std::string();
  if (!it->is_string()) {
    return Status::Internal(std::string(what) + ": \"" + field +
                            "\" is not a string: " + it->dump());
  }
  auto r = Base64Decode(it->get_ref<const std::string&>());
  if (!r.ok()) {
    return Status::Internal(std::string(what) + ": \"" + field + "\" is not base64");
  }
  return r;
}

Result<EtcdKeyValue> DecodeKeyValue(const json& kv, const char* what) {
  if (!kv.is_object())
    return Status::Internal(std::string(what) + ": a kvs[] entry is not an object");
  EtcdKeyValue e;
  KVSTORE_ASSIGN_OR_RETURN(e.key, Base64Field(kv, "key", what));
  KVSTORE_ASSIGN_OR_RETURN(e.value, Base64Field(kv, "value", what));
  KVSTORE_ASSIGN_OR_RETURN(e.lease, IntField(kv, "lease", what));
  KVSTORE_ASSIGN_OR_RETURN(e.mod_revision, IntField(kv, "mod_revision", what));
  return e;
}

// header.revision; a reply without a header has revision 0.
Result<int64_t> HeaderRevision(const json& j, const char* what) {
  auto it = j.find("header");
  if (it == j.end() || it->is_null()) return int64_t{0};
  return IntField(*it, "revision", what);
}

}  // namespace

Result<EtcdRange> DecodeEtcdRangeReply(std::string_view body) {
  constexpr const char* kWhat = "etcd range reply";
  KVSTORE_ASSIGN_OR_RETURN(json j, ParseObject(body, kWhat));
  EtcdRange out;
  KVSTORE_ASSIGN_OR_RETURN(out.revision, HeaderRevision(j, kWhat));
  auto it = j.find("kvs");
  if (it == j.end() || it->is_null()) return out;
  if (!it->is_array()) return Status::Internal(std::string(kWhat) + ": \"kvs\" is not an array");
  for (const auto& kv : *it) {
    KVSTORE_ASSIGN_OR_RETURN(EtcdKeyValue e, DecodeKeyValue(kv, kWhat));
    out.kvs.push_back(std::move(e));
  }
  return out;
}

Result<int64_t> DecodeEtcdPutReply(std::string_view body) {
  constexpr const char* kWhat = "etcd put reply";
  KVSTORE_ASSIGN_OR_RETURN(json j, ParseObject(body, kWhat));
  return HeaderRevision(j, kWhat);
}

Result<int64_t> DecodeEtcdDeleteReply(std::string_view body) {
  constexpr const char* kWhat = "etcd delete reply";
  KVSTORE_ASSIGN_OR_RETURN(json j, ParseObject(body, kWhat));
  KVSTORE_ASSIGN_OR_RETURN(int64_t n, IntField(j, "deleted", kWhat));
  if (n < 0) return Status::Internal(std::string(kWhat) + ": \"deleted\" is negative");
  return n;
}

Result<int64_t> DecodeEtcdLeaseGrantReply(std::string_view body) {
  constexpr const char* kWhat = "etcd lease grant reply";
  KVSTORE_ASSIGN_OR_RETURN(json j, ParseObject(body, kWhat));
  if (auto e = j.find("error"); e != j.end() && !e->is_null()) {
    std::string msg = e->is_string() ? e->get<std::string>() : e->dump();
    if (!msg.empty()) return Status::Unavailable("etcd lease grant: " + msg);
  }
  KVSTORE_ASSIGN_OR_RETURN(int64_t id, IntField(j, "ID", kWhat));
  if (id == 0) return Status::Internal(std::string(kWhat) + " carries no lease id (\"ID\")");
  return id;
}

Result<int64_t> DecodeEtcdLeaseKeepAliveReply(std::string_view body) {
  constexpr const char* kWhat = "etcd keepalive reply";
  if (auto nl = body.find('\n'); nl != std::string_view::npos) body = body.substr(0, nl);
  KVSTORE_ASSIGN_OR_RETURN(json j, ParseObject(body, kWhat));
  auto it = j.find("result");
  return IntField(it != j.end() ? *it : j, "TTL", kWhat);
}

Result<EtcdWatchResponse> DecodeEtcdWatchMessage(std::string_view line) {
  constexpr const char* kWhat = "etcd watch message";
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::InvalidArgument(std::string(kWhat) + " is not a JSON object");
  }
  if (j.contains("error")) return Status::NotFound("etcd watch failed: " + j["error"].dump());
  auto it = j.find("result");
  const json& r = it != j.end() ? *it : j;
  if (!r.is_object()) return Status::Internal(std::string(kWhat) + ": \"result\" is not an object");
  auto canceled = r.find("canceled");
  if (canceled != r.end() && !canceled->is_null() && !canceled->is_boolean()) {
    return Status::Internal(std::string(kWhat) + ": \"canceled\" is not a boolean");
  }
  KVSTORE_ASSIGN_OR_RETURN(int64_t compact, IntField(r, "compact_revision", kWhat));
  if ((canceled != r.end() && canceled->is_boolean() && canceled->get<bool>()) || compact != 0) {
    auto reason = r.find("cancel_reason");
    std::string why = reason != r.end() && reason->is_string() ? reason->get<std::string>()
                                                               : "revision compacted";
    return Status::NotFound("etcd cancelled the watch (" + why + ")");
  }
  EtcdWatchResponse resp;
  KVSTORE_ASSIGN_OR_RETURN(resp.revision, HeaderRevision(r, kWhat));
  if (auto ev = r.find("events"); ev != r.end() && !ev->is_null()) {
    if (!ev->is_array())
      return Status::Internal(std::string(kWhat) + ": \"events\" is not an array");
    resp.events = ev->size();
  }
  return resp;
}

}  // namespace kvstore::cluster
