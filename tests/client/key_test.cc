// Keys are part of the storage format: every engine and tool must compute the same
// bytes forever. The vectors below were computed outside this code base:
//
// SHA-256 (python3, hashlib):
//   import hashlib, struct
//   def seed(ns): return hashlib.sha256(b"kvstore/ns/v1" + ns.encode()).digest()
//   def chain(parent, toks, bs, extra=b""):
//       return hashlib.sha256(parent + struct.pack("<II", bs, len(toks))
//                             + b"".join(struct.pack("<I", t) for t in toks) + extra).digest()
//   keys of a prompt: h = seed(ns); for each full block: h = chain(h, block, bs)
//
// XXH3 (a 20-line C program against libxxhash, building the same bytes by hand):
//   H(m) = canonical(XXH3_128bits_withSeed(m, 0x6b7673746f726531))
//        | canonical(XXH3_128bits_withSeed(m, 0x6b7673746f726532))
#include "kvstore/key.h"

#include <gtest/gtest.h>

#include "status_matchers.h"

#include <numeric>
#include <set>

namespace kvstore {
namespace {

constexpr const char* kNs = "llama-tiny/f32/L4/kv2/d32/b16/v1";

std::vector<uint32_t> Iota(uint32_t first, size_t n) {
  std::vector<uint32_t> v(n);
  std::iota(v.begin(), v.end(), first);
  return v;
}

std::vector<std::string> Hex(const std::vector<Key>& keys) {
  std::vector<std::string> out;
  for (const Key& k : keys) out.push_back(k.ToHex());
  return out;
}

std::vector<std::byte> Bytes(std::string_view s) {
  std::vector<std::byte> out(s.size());
  for (size_t i = 0; i < s.size(); ++i) out[i] = static_cast<std::byte>(s[i]);
  return out;
}

TEST(KeyVectors, Sha256NamespaceSeed) {
  EXPECT_EQ(NamespaceSeed("").ToHex(),
            "65b4fc2d2678a8fe40b3a3f47a7bf70bcccc0522400bd3c97379262da0f24d55");
  EXPECT_EQ(NamespaceSeed(kNs).ToHex(),
            "66a6005020d4a6aaa94f6412b2ac94f4a51ef3c72aeb3e72e7daaf786b6cfed2");
}

TEST(KeyVectors, Sha256PrefixKeys) {
  // Tokens 1..40, block size 16: two full blocks; the last 8 tokens get no key.
  std::vector<uint32_t> tokens = Iota(1, 40);
  KeyOptions opts{.ns = kNs, .block_size = 16};
  EXPECT_EQ(Hex(PrefixKeys(tokens, opts)),
            (std::vector<std::string>{
                "f424427033f8d83728791034b512b534f0823fa681f996515e4d00c96248f55e",
                "60a12ed7a61b18fd0427816654523dbbdd7463a00493c5be0bddcece44f7020d"}));
}

TEST(KeyVectors, Sha256ExtremeTokenValues) {
  std::vector<uint32_t> tokens = {0, 4294967295u, 7, 65536};
  KeyOptions opts{.ns = "", .block_size = 4};
  EXPECT_EQ(Hex(PrefixKeys(tokens, opts)),
            (std::vector<std::string>{
                "c6151e834b6d02e9fa597f5c26b7575d11e1aaf3e5fd0c46a265d088ec2371bf"}));
}

TEST(KeyVectors, Sha256ChainWithExtra) {
  std::vector<uint32_t> tokens = {1, 2, 3, 4};
  auto extra = Bytes("layer=3");
  EXPECT_EQ(ChainKey(NamespaceSeed(kNs), tokens, 4, extra).ToHex(),
            "47e18eaf607965a86087c3e737fe73eb743941e2da1cebbaf35069d01b319b7c");
}

TEST(KeyVectors, Xxh3) {
  EXPECT_EQ(NamespaceSeed(kNs, HashKind::kXxh3).ToHex(),
            "8f77adcac3e267357c61f5ca21c917d776bf152d17592bde76cf9dc8b21212a5");
  KeyOptions opts{.ns = kNs, .block_size = 16, .hash = HashKind::kXxh3};
  EXPECT_EQ(Hex(PrefixKeys(Iota(1, 32), opts)),
            (std::vector<std::string>{
                "b6c6d8fc30879671861f801bfac8ac6d069f275ea9b896238f959125e0ba3709",
                "b7e40fe588ae47ae91fd3b9cc3449a6d61c7fbda237e302bf59406a0633648e0"}));
}

TEST(KeyXxh3, StableAndDifferentFromSha256) {
  KeyOptions x{.ns = kNs, .block_size = 8, .hash = HashKind::kXxh3};
  KeyOptions s{.ns = kNs, .block_size = 8, .hash = HashKind::kSha256};
  auto tokens = Iota(100, 64);
  auto a = PrefixKeys(tokens, x);
  auto b = PrefixKeys(tokens, x);
  auto c = PrefixKeys(tokens, s);
  ASSERT_EQ(a.size(), 8u);
  EXPECT_EQ(a, b);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NE(a[i], c[i]) << i;
  // The two 16-byte halves come from different seeds, so they differ.
  EXPECT_FALSE(std::equal(a[0].bytes.begin(), a[0].bytes.begin() + 16, a[0].bytes.begin() + 16));
}

TEST(PrefixKeys, OnlyFullBlocks) {
  KeyOptions opts{.ns = kNs, .block_size = 16};
  EXPECT_TRUE(PrefixKeys(Iota(0, 0), opts).empty());
  EXPECT_TRUE(PrefixKeys(Iota(0, 15), opts).empty());
  EXPECT_EQ(PrefixKeys(Iota(0, 16), opts).size(), 1u);
  EXPECT_EQ(PrefixKeys(Iota(0, 47), opts).size(), 2u);
  EXPECT_EQ(PrefixKeys(Iota(0, 48), opts).size(), 3u);
}

TEST(PrefixKeys, KeysOfAPromptArePrefixOfItsExtension) {
  KeyOptions opts{.ns = kNs, .block_size = 4};
  auto prompt = Iota(10, 12);
  auto extended = prompt;
  for (uint32_t t : {99u, 98u, 97u, 96u, 95u}) extended.push_back(t);
  auto short_keys = PrefixKeys(prompt, opts);
  auto long_keys = PrefixKeys(extended, opts);
  ASSERT_EQ(short_keys.size(), 3u);
  ASSERT_EQ(long_keys.size(), 4u);
  EXPECT_TRUE(std::equal(short_keys.begin(), short_keys.end(), long_keys.begin()));
}

TEST(PrefixKeys, ChangingOneTokenChangesThatBlockAndEveryLaterOne) {
  KeyOptions opts{.ns = kNs, .block_size = 4};
  auto a = Iota(0, 16);
  auto b = a;
  b[5] = 12345;  // block 1
  auto ka = PrefixKeys(a, opts);
  auto kb = PrefixKeys(b, opts);
  EXPECT_EQ(ka[0], kb[0]);
  for (size_t i = 1; i < 4; ++i) EXPECT_NE(ka[i], kb[i]) << i;
}

TEST(PrefixKeys, NamespaceAndBlockSizeSeparateKeys) {
  auto tokens = Iota(0, 32);
  auto a = PrefixKeys(tokens, {.ns = "model-a", .block_size = 16});
  auto b = PrefixKeys(tokens, {.ns = "model-b", .block_size = 16});
  auto c = PrefixKeys(tokens, {.ns = "model-a", .block_size = 8});
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NE(a[i], b[i]);
  EXPECT_NE(a[0], c[1]);  // same 16 tokens, cut differently
  std::set<Key> all(a.begin(), a.end());
  all.insert(b.begin(), b.end());
  all.insert(c.begin(), c.end());
  EXPECT_EQ(all.size(), a.size() + b.size() + c.size());
}

TEST(ChainKey, TokenAndExtraSplitsDoNotCollide) {
  // Without a token count, ([7], "") and ([], le32(7)) would hash identical bytes.
  Key parent = NamespaceSeed(kNs);
  std::vector<uint32_t> one = {7};
  std::vector<std::byte> le7 = {std::byte{7}, std::byte{0}, std::byte{0}, std::byte{0}};
  EXPECT_NE(ChainKey(parent, one, 1), ChainKey(parent, {}, 1, le7));
  EXPECT_NE(ChainKey(parent, one, 1, {}, HashKind::kXxh3),
            ChainKey(parent, {}, 1, le7, HashKind::kXxh3));
  // Extra bytes separate keys (per-layer keys).
  EXPECT_NE(ChainKey(parent, one, 1, Bytes("layer=0")), ChainKey(parent, one, 1, Bytes("layer=1")));
  EXPECT_EQ(ChainKey(parent, one, 1), ChainKey(parent, one, 1, {}));
}

TEST(KeyHex, RoundTrip) {
  Key k = NamespaceSeed(kNs);
  auto back = Key::FromHex(k.ToHex());
  ASSERT_OK(back);
  EXPECT_EQ(*back, k);
  std::string upper = k.ToHex();
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto from_upper = Key::FromHex(upper);
  ASSERT_OK(from_upper);
  EXPECT_EQ(*from_upper, k);
  EXPECT_EQ(Key{}.ToHex(), std::string(64, '0'));
}

TEST(KeyHex, Rejects) {
  std::string good(64, 'a');
  for (std::string bad :
       {std::string(), std::string(63, 'a'), std::string(65, 'a'), good.substr(0, 63) + "g",
        " " + good.substr(1), good.substr(0, 62) + "0x"}) {
    auto r = Key::FromHex(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("64 hex"), std::string::npos) << r.status().message();
  }
}

TEST(KeyBytes, FromBytes) {
  Key k = NamespaceSeed("x");
  auto r = Key::FromBytes(k.bytes);
  ASSERT_OK(r);
  EXPECT_EQ(*r, k);
  EXPECT_FALSE(Key::FromBytes(std::span(k.bytes).first(31)).ok());
}

TEST(ParseTokenList, Parses) {
  auto r = ParseTokenList("1,2, 3 ,4294967295");
  ASSERT_OK(r);
  EXPECT_EQ(*r, (std::vector<uint32_t>{1, 2, 3, 4294967295u}));
  auto empty = ParseTokenList("");
  ASSERT_OK(empty);
  EXPECT_TRUE(empty->empty());
}

TEST(ParseTokenList, NamesTheBadItem) {
  for (const char* bad : {"1,,2", "1,x,3", "1,2,", "4294967296", "-1", "1.5", "99999999999"}) {
    auto r = ParseTokenList(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
  auto r = ParseTokenList("1,2,oops");
  EXPECT_NE(r.status().message().find("item 3"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("oops"), std::string::npos);
}

TEST(KeyHash, UsableInHashContainers) {
  std::hash<Key> h;
  EXPECT_NE(h(NamespaceSeed("a")), h(NamespaceSeed("b")));
}

}  // namespace
}  // namespace kvstore
