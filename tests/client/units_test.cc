#include "kvstore/units.h"

#include <gtest/gtest.h>

#include "status_matchers.h"

namespace kvstore {
namespace {

using std::chrono::milliseconds;

uint64_t Size(std::string_view s) {
  auto r = ParseSize(s);
  EXPECT_OK(r) << s << ": " << r.status().ToString();
  return r.ok() ? *r : 0;
}

int64_t Ms(std::string_view s) {
  auto r = ParseDuration(s);
  EXPECT_OK(r) << s << ": " << r.status().ToString();
  return r.ok() ? r->count() : -1;
}

TEST(ParseSize, Units) {
  EXPECT_EQ(Size("0"), 0u);
  EXPECT_EQ(Size("4096"), 4096u);
  EXPECT_EQ(Size("12B"), 12u);
  EXPECT_EQ(Size("64KiB"), 64u << 10);
  EXPECT_EQ(Size("512MiB"), 512ull << 20);
  EXPECT_EQ(Size("4GiB"), 4ull << 30);
  EXPECT_EQ(Size("1TiB"), 1ull << 40);
  EXPECT_EQ(Size("2PiB"), 2ull << 50);
  EXPECT_EQ(Size("3.5 EiB"), 7ull << 59);
  EXPECT_EQ(Size("1PB"), 1000000000000000ull);
  EXPECT_EQ(Size("64k"), 64u << 10);
  EXPECT_EQ(Size("2m"), 2u << 20);
  EXPECT_EQ(Size("3G"), 3ull << 30);
  EXPECT_EQ(Size("1KB"), 1000u);
  EXPECT_EQ(Size("5MB"), 5000000u);
  EXPECT_EQ(Size("2GB"), 2000000000u);
  EXPECT_EQ(Size("1.5GiB"), 3ull << 29);
  EXPECT_EQ(Size(" 1.5 GiB "), 3ull << 29);
  EXPECT_EQ(Size("0.5KiB"), 512u);
}

TEST(ParseSize, Rejects) {
  for (const char* bad : {"", "GiB", "12XB", "-1", "1..5G", "1e3", "99999999999999999999",
                          "20000000TiB", "17EiB", "4 G iB"}) {
    auto r = ParseSize(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
      EXPECT_NE(r.status().message().find(std::string("\"") + bad + "\""), std::string::npos)
          << r.status().message();
    }
  }
}

TEST(FormatSize, Readable) {
  EXPECT_EQ(FormatSize(0), "0 B");
  EXPECT_EQ(FormatSize(12), "12 B");
  EXPECT_EQ(FormatSize(1023), "1023 B");
  EXPECT_EQ(FormatSize(1024), "1 KiB");
  EXPECT_EQ(FormatSize(640 << 10), "640 KiB");
  EXPECT_EQ(FormatSize(1536), "1.5 KiB");
  EXPECT_EQ(FormatSize(3ull << 29), "1.5 GiB");
  EXPECT_EQ(FormatSize((1 << 20) - 1), "1 MiB");
  EXPECT_EQ(FormatSize(1ull << 40), "1 TiB");
  EXPECT_EQ(FormatSize(UINT64_MAX), "16 EiB");
}

TEST(FormatSize, ParsesBack) {
  // Every unit FormatSize prints, PiB and EiB included, parses back.
  for (uint64_t v : {0ull, 12ull, 1024ull, 1536ull, 640ull << 10, 3ull << 29, 1ull << 40,
                     3ull << 50, 5ull << 60}) {
    EXPECT_EQ(Size(FormatSize(v)), v) << FormatSize(v);
  }
}

TEST(FormatSize, RoundedValuesParseBackNearby) {
  // One decimal place loses precision; what matters is that the text parses and stays close.
  for (uint64_t v : {3870638706060670ull, (1ull << 20) + 1, 999999999999ull, (15ull << 60) + 7}) {
    uint64_t back = Size(FormatSize(v));
    double ratio = static_cast<double>(back) / static_cast<double>(v);
    EXPECT_NEAR(ratio, 1.0, 0.05) << FormatSize(v);
  }
}

TEST(ParseDuration, Units) {
  EXPECT_EQ(Ms("250ms"), 250);
  EXPECT_EQ(Ms("10s"), 10000);
  EXPECT_EQ(Ms("10m"), 600000);
  EXPECT_EQ(Ms("2h"), 7200000);
  EXPECT_EQ(Ms("1d"), 86400000);
  EXPECT_EQ(Ms("5"), 5000);
  EXPECT_EQ(Ms("0"), 0);
  EXPECT_EQ(Ms("1.5s"), 1500);
  EXPECT_EQ(Ms("1h30m"), 5400000);
  EXPECT_EQ(Ms("10m0s"), 600000);
  EXPECT_EQ(Ms("1m2.5s"), 62500);
  EXPECT_EQ(Ms(" 3s "), 3000);
}

TEST(ParseDuration, Rejects) {
  for (const char* bad : {"", "s", "10x", "10m5", "-1s", "1..5s", "10 m", "9999999999999999d"}) {
    auto r = ParseDuration(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    }
  }
}

TEST(FormatDuration, Readable) {
  EXPECT_EQ(FormatDuration(milliseconds(0)), "0s");
  EXPECT_EQ(FormatDuration(milliseconds(250)), "250ms");
  EXPECT_EQ(FormatDuration(milliseconds(1500)), "1.5s");
  EXPECT_EQ(FormatDuration(milliseconds(10000)), "10s");
  EXPECT_EQ(FormatDuration(milliseconds(600000)), "10m0s");
  EXPECT_EQ(FormatDuration(milliseconds(3723500)), "1h2m3.5s");
  EXPECT_EQ(FormatDuration(milliseconds(-1500)), "-1.5s");
}

TEST(FormatDuration, ParsesBack) {
  for (int64_t v : {0, 1, 250, 1500, 59999, 600000, 3723500, 90000000}) {
    EXPECT_EQ(Ms(FormatDuration(milliseconds(v))), v) << FormatDuration(milliseconds(v));
  }
}

TEST(SplitHostPort, Parses) {
  std::string host;
  uint16_t port = 0;
  ASSERT_OK(SplitHostPort("127.0.0.1:7400", &host, &port));
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 7400);
  ASSERT_OK(SplitHostPort("[::1]:9400", &host, &port));
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 9400);
  ASSERT_OK(SplitHostPort("localhost:0", &host, &port));
  EXPECT_EQ(host, "localhost");
  EXPECT_EQ(port, 0);
  ASSERT_OK(SplitHostPort("h:65535", &host, &port));
  EXPECT_EQ(port, 65535);
}

TEST(SplitHostPort, Rejects) {
  std::string host = "unchanged";
  uint16_t port = 1;
  for (const char* bad : {"", "127.0.0.1", "127.0.0.1:", ":7400", "h:65536", "h:-1", "h:7x",
                          "::1:7400", "[::1]", "[::1]7400", "[::1:7400", "h:123456"}) {
    Status s = SplitHostPort(bad, &host, &port);
    EXPECT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(host, "unchanged");
  EXPECT_EQ(port, 1);
}

}  // namespace
}  // namespace kvstore
