#include "spill_record.h"

#include <gtest/gtest.h>

#include "status_matchers.h"

namespace kvstore::tiers {
namespace {

SpillRecord Sample() {
  SpillRecord r;
  r.location = {7, 4096 * 3, 8192};
  r.meta.size = 5000;
  r.meta.checksum = 0x1122334455667788ull;
  r.meta.layout = "llama/f16/L32";
  r.meta.producer = "prefill-0";
  r.meta.created_unix_ms = 1700000000000ull;
  r.meta.expires_unix_ms = 1700000060000ull;
  return r;
}

TEST(SpillRecordTest, RoundTrips) {
  const SpillRecord r = Sample();
  auto d = DecodeSpillRecord(EncodeSpillRecord(r));
  ASSERT_OK(d);
  EXPECT_EQ(d->location.segment, 7u);
  EXPECT_EQ(d->location.offset, 4096u * 3);
  EXPECT_EQ(d->location.stored_bytes, 8192u);
  EXPECT_EQ(d->meta.size, 5000u);
  EXPECT_EQ(d->meta.checksum, r.meta.checksum);
  EXPECT_EQ(d->meta.layout, r.meta.layout);
  EXPECT_EQ(d->meta.producer, r.meta.producer);
  EXPECT_EQ(d->meta.created_unix_ms, r.meta.created_unix_ms);
  EXPECT_EQ(d->meta.expires_unix_ms, r.meta.expires_unix_ms);
  EXPECT_EQ(d->meta.tier, Tier::kSpill);
}

TEST(SpillRecordTest, AcceptsTrailingFieldsOfLaterVersions) {
  std::string enc = EncodeSpillRecord(Sample()) + "future";
  EXPECT_OK(DecodeSpillRecord(enc));
}

TEST(SpillRecordTest, RefusesTruncatedAndUnknown) {
  const std::string enc = EncodeSpillRecord(Sample());
  for (size_t n = 0; n < enc.size(); ++n) {
    auto d = DecodeSpillRecord(std::string_view(enc).substr(0, n));
    ASSERT_FALSE(d.ok()) << n;
    EXPECT_EQ(d.status().code(), StatusCode::kDataLoss);
  }
  std::string bad = enc;
  bad[0] = 9;
  EXPECT_EQ(DecodeSpillRecord(bad).status().code(), StatusCode::kDataLoss);
}

}  // namespace
}  // namespace kvstore::tiers
