// The etcd gateway's replies decoded without an etcd: every malformed number
// (float, negative where none can be, string that is not decimal, past int64)
// and every missing or mistyped field is a Status naming the field, never an
// undefined conversion or an exception.
#include "kvstore/cluster/etcd_decode.h"

#include <gtest/gtest.h>

#include <string>

#include "status_matchers.h"

namespace kvstore::cluster {
namespace {

// "a" and "b" in base64.
constexpr char kA[] = "YQ==";
constexpr char kB[] = "Yg==";

std::string Range(const std::string& revision, const std::string& kv_fields) {
  return R"({"header":{"revision":)" + revision + R"(},"kvs":[{"key":")" + kA + R"(","value":")" +
         kB + "\"" + kv_fields + "}]}";
}

void ExpectRefused(const Status& s, const std::string& field) {
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(field), std::string::npos) << s.message();
}

TEST(EtcdDecode, RangeReplyWithStringAndNumberIntegers) {
  auto r = DecodeEtcdRangeReply(Range(R"("12")", R"(,"lease":"7","mod_revision":11)"));
  ASSERT_OK(r);
  EXPECT_EQ(r->revision, 12);
  ASSERT_EQ(r->kvs.size(), 1u);
  EXPECT_EQ(r->kvs[0].key, "a");
  EXPECT_EQ(r->kvs[0].value, "b");
  EXPECT_EQ(r->kvs[0].lease, 7);
  EXPECT_EQ(r->kvs[0].mod_revision, 11);
}

TEST(EtcdDecode, RangeReplyWithoutKvsOrHeaderIsEmpty) {
  auto r = DecodeEtcdRangeReply(R"({"header":{"revision":"3"}})");
  ASSERT_OK(r);
  EXPECT_EQ(r->revision, 3);
  EXPECT_TRUE(r->kvs.empty());
  auto bare = DecodeEtcdRangeReply("{}");
  ASSERT_OK(bare);
  EXPECT_EQ(bare->revision, 0);
}

TEST(EtcdDecode, FloatsAreRefusedByName) {
  ExpectRefused(DecodeEtcdRangeReply(Range("1e30", "")).status(), "revision");
  ExpectRefused(DecodeEtcdRangeReply(Range("1", R"(,"lease":1.5)")).status(), "lease");
  ExpectRefused(DecodeEtcdRangeReply(Range("1", R"(,"mod_revision":-1e300)")).status(),
                "mod_revision");
  ExpectRefused(DecodeEtcdLeaseGrantReply(R"({"ID":1e30})").status(), "ID");
  ExpectRefused(DecodeEtcdLeaseKeepAliveReply(R"({"result":{"TTL":2.5}})").status(), "TTL");
  ExpectRefused(DecodeEtcdWatchMessage(R"({"result":{"header":{"revision":1e19}}})").status(),
                "revision");
}

TEST(EtcdDecode, HugeNumbersAndStringsPastInt64AreRefused) {
  ExpectRefused(DecodeEtcdPutReply(R"({"header":{"revision":18446744073709551615}})").status(),
                "revision");
  ExpectRefused(DecodeEtcdPutReply(R"({"header":{"revision":"9223372036854775808"}})").status(),
                "revision");
  ExpectRefused(
      DecodeEtcdRangeReply(Range("1", R"(,"lease":"99999999999999999999999999")")).status(),
      "lease");
  auto max = DecodeEtcdPutReply(R"({"header":{"revision":"9223372036854775807"}})");
  ASSERT_OK(max);
  EXPECT_EQ(*max, INT64_MAX);
}

TEST(EtcdDecode, GarbageStringsAreRefused) {
  for (const char* bad : {R"("")", R"("12x")", R"(" 12")", R"("0x10")", R"("abc")"}) {
    ExpectRefused(DecodeEtcdRangeReply(Range(bad, "")).status(), "revision");
  }
  ExpectRefused(DecodeEtcdDeleteReply(R"({"deleted":true})").status(), "deleted");
  ExpectRefused(DecodeEtcdDeleteReply(R"({"deleted":[1]})").status(), "deleted");
}

TEST(EtcdDecode, NegativesAreRefusedWhereNoneCanBe) {
  ExpectRefused(DecodeEtcdDeleteReply(R"({"deleted":"-1"})").status(), "deleted");
  // A negative TTL is etcd's way to say the lease is gone: decoded, the caller decides.
  auto ttl = DecodeEtcdLeaseKeepAliveReply(R"({"result":{"TTL":"-1"}})");
  ASSERT_OK(ttl);
  EXPECT_EQ(*ttl, -1);
}

TEST(EtcdDecode, MissingAndMistypedFields) {
  ExpectRefused(DecodeEtcdLeaseGrantReply(R"({"TTL":"5"})").status(), "ID");
  ExpectRefused(DecodeEtcdRangeReply(R"({"kvs":{"key":"YQ=="}})").status(), "kvs");
  ExpectRefused(DecodeEtcdRangeReply(R"({"kvs":[7]})").status(), "kvs");
  ExpectRefused(DecodeEtcdRangeReply(R"({"kvs":[{"key":5}]})").status(), "key");
  ExpectRefused(DecodeEtcdRangeReply(R"({"kvs":[{"value":"!!"}]})").status(), "value");
  ExpectRefused(DecodeEtcdRangeReply(R"({"header":7})").status(), "revision");
  ExpectRefused(DecodeEtcdWatchMessage(R"({"result":{"events":{}}})").status(), "events");
  ExpectRefused(DecodeEtcdWatchMessage(R"({"result":{"canceled":"yes"}})").status(), "canceled");
  auto grant = DecodeEtcdLeaseGrantReply(R"({"error":"too many leases"})");
  EXPECT_EQ(grant.status().code(), StatusCode::kUnavailable);
}

TEST(EtcdDecode, NonObjectJsonIsRefused) {
  for (const char* body : {"", "[]", "12", "\"x\"", "null", "{", "{\"header\":"}) {
    EXPECT_FALSE(DecodeEtcdRangeReply(body).ok()) << body;
    EXPECT_FALSE(DecodeEtcdPutReply(body).ok()) << body;
    EXPECT_FALSE(DecodeEtcdDeleteReply(body).ok()) << body;
    EXPECT_FALSE(DecodeEtcdLeaseGrantReply(body).ok()) << body;
    EXPECT_FALSE(DecodeEtcdLeaseKeepAliveReply(body).ok()) << body;
    EXPECT_EQ(DecodeEtcdWatchMessage(body).status().code(), StatusCode::kInvalidArgument) << body;
  }
  ExpectRefused(DecodeEtcdWatchMessage(R"({"result":[1]})").status(), "result");
}

TEST(EtcdDecode, WatchMessages) {
  auto created = DecodeEtcdWatchMessage(R"({"result":{"header":{"revision":"4"},"created":true}})");
  ASSERT_OK(created);
  EXPECT_EQ(created->revision, 4);
  EXPECT_EQ(created->events, 0u);
  auto change = DecodeEtcdWatchMessage(
      R"({"result":{"header":{"revision":"9"},"events":[{"type":"PUT"},{"type":"DELETE"}]}})");
  ASSERT_OK(change);
  EXPECT_EQ(change->revision, 9);
  EXPECT_EQ(change->events, 2u);
  EXPECT_EQ(DecodeEtcdWatchMessage(R"({"result":{"compact_revision":"3"}})").status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(DecodeEtcdWatchMessage(R"({"result":{"canceled":true}})").status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(DecodeEtcdWatchMessage(R"({"error":{"grpc_code":14}})").status().code(),
            StatusCode::kNotFound);
}

TEST(EtcdDecode, KeepAliveReadsTheFirstLineOnly) {
  auto ttl = DecodeEtcdLeaseKeepAliveReply("{\"result\":{\"TTL\":\"10\"}}\n{garbage");
  ASSERT_OK(ttl);
  EXPECT_EQ(*ttl, 10);
}

}  // namespace
}  // namespace kvstore::cluster
