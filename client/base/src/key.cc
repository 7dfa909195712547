// Keys: hash of prefix (see kvstore/key.h for the contract).
//
// Exact bytes hashed (every integer little-endian):
//
//   namespace seed  h_-1 = H("kvstore/ns/v1" | namespace bytes)
//   chain step      h_i  = H(parent[32] | block_size u32 | token_count u32 | tokens u32 each |
//                            extra bytes)
//
// token_count is the length field that makes the message parse one way only: without it,
// (tokens=[t], extra=e) and (tokens=[], extra=le32(t)|e) would hash the same bytes. The
// extra bytes need no length since they run to the end of the message. A seed message cannot
// pose as a chain message either: that would need a parent hash starting with the 13-byte
// tag "kvstore/ns/v1", i.e. a preimage.
//
// H is one of:
//   kSha256  SHA-256 of the message (OpenSSL EVP): 32 bytes.
//   kXxh3    XXH3-128 of the message with seed kXxh3SeedA, then with kXxh3SeedB, each in
//            xxHash's canonical (big-endian) byte order, concatenated: 32 bytes. Fast, and
//            easy to collide on purpose: trusted deployments only.
//
// The test vectors in tests/client/key_test.cc pin all of this down; changing any byte
// here changes every key ever stored, so it needs a new namespace tag ("kvstore/ns/v2").
#include "kvstore/key.h"

#include <openssl/evp.h>
#include <xxhash.h>

#include <cassert>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace kvstore {
namespace {

constexpr std::string_view kNamespaceTag = "kvstore/ns/v1";
constexpr XXH64_hash_t kXxh3SeedA = 0x6b7673746f726531ull;  // "kvstore1"
constexpr XXH64_hash_t kXxh3SeedB = 0x6b7673746f726532ull;  // "kvstore2"

void AppendU32(std::vector<std::byte>* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<std::byte>((v >> (8 * i)) & 0xff));
}

Key Sha256(std::span<const std::byte> msg) {
  Key k;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  unsigned int len = 0;
  // These fail only when OpenSSL cannot allocate or is broken; keys cannot be wrong silently.
  bool ok =
      ctx != nullptr && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1 &&
      EVP_DigestUpdate(ctx.get(), msg.data(), msg.size()) == 1 &&
      EVP_DigestFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(k.bytes.data()), &len) == 1 &&
      len == Key::kSize;
  if (!ok) std::abort();
  return k;
}

Key Xxh3Pair(std::span<const std::byte> msg) {
  Key k;
  XXH128_canonical_t a;
  XXH128_canonical_t b;
  XXH128_canonicalFromHash(&a, XXH3_128bits_withSeed(msg.data(), msg.size(), kXxh3SeedA));
  XXH128_canonicalFromHash(&b, XXH3_128bits_withSeed(msg.data(), msg.size(), kXxh3SeedB));
  static_assert(sizeof(a) + sizeof(b) == Key::kSize);
  std::memcpy(k.bytes.data(), &a, sizeof(a));
  std::memcpy(k.bytes.data() + sizeof(a), &b, sizeof(b));
  return k;
}

Key Hash(std::span<const std::byte> msg, HashKind hash) {
  switch (hash) {
    case HashKind::kSha256:
      return Sha256(msg);
    case HashKind::kXxh3:
      return Xxh3Pair(msg);
  }
  assert(false && "unknown HashKind");
  return Sha256(msg);
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string Key::ToHex() const {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(kSize * 2, '0');
  for (size_t i = 0; i < kSize; ++i) {
    auto b = static_cast<uint8_t>(bytes[i]);
    out[2 * i] = kDigits[b >> 4];
    out[2 * i + 1] = kDigits[b & 0xf];
  }
  return out;
}

Result<Key> Key::FromHex(std::string_view hex) {
  if (hex.size() != kSize * 2) {
    return Status::InvalidArgument("a key is 64 hex characters, got " + std::to_string(hex.size()) +
                                   " characters");
  }
  Key k;
  for (size_t i = 0; i < kSize; ++i) {
    int hi = HexValue(hex[2 * i]);
    int lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      size_t bad = hi < 0 ? 2 * i : 2 * i + 1;
      return Status::InvalidArgument("a key is 64 hex characters; character " +
                                     std::to_string(bad + 1) + " ('" + std::string(1, hex[bad]) +
                                     "') is not hex");
    }
    k.bytes[i] = static_cast<std::byte>((hi << 4) | lo);
  }
  return k;
}

Result<Key> Key::FromBytes(std::span<const std::byte> raw) {
  if (raw.size() != kSize) {
    return Status::InvalidArgument("a key is 32 bytes, got " + std::to_string(raw.size()));
  }
  Key k;
  std::memcpy(k.bytes.data(), raw.data(), kSize);
  return k;
}

Key NamespaceSeed(std::string_view ns, HashKind hash) {
  std::vector<std::byte> msg(kNamespaceTag.size() + ns.size());
  std::memcpy(msg.data(), kNamespaceTag.data(), kNamespaceTag.size());
  if (!ns.empty()) std::memcpy(msg.data() + kNamespaceTag.size(), ns.data(), ns.size());
  return Hash(msg, hash);
}

Key ChainKey(const Key& parent, std::span<const uint32_t> block_tokens, uint32_t block_size,
             std::span<const std::byte> extra, HashKind hash) {
  std::vector<std::byte> msg;
  msg.reserve(Key::kSize + 8 + 4 * block_tokens.size() + extra.size());
  msg.insert(msg.end(), parent.bytes.begin(), parent.bytes.end());
  AppendU32(&msg, block_size);
  AppendU32(&msg, static_cast<uint32_t>(block_tokens.size()));
  for (uint32_t t : block_tokens) AppendU32(&msg, t);
  msg.insert(msg.end(), extra.begin(), extra.end());
  return Hash(msg, hash);
}

std::vector<Key> PrefixKeys(std::span<const uint32_t> tokens, const KeyOptions& opts) {
  assert(opts.block_size > 0 && "PrefixKeys: block_size must be > 0");
  std::vector<Key> keys;
  if (opts.block_size == 0) return keys;
  size_t blocks = tokens.size() / opts.block_size;
  keys.reserve(blocks);
  Key parent = NamespaceSeed(opts.ns, opts.hash);
  for (size_t i = 0; i < blocks; ++i) {
    parent = ChainKey(parent, tokens.subspan(i * opts.block_size, opts.block_size), opts.block_size,
                      {}, opts.hash);
    keys.push_back(parent);
  }
  return keys;
}

Result<std::vector<uint32_t>> ParseTokenList(std::string_view text) {
  std::vector<uint32_t> out;
  auto is_blank = [](char c) { return c == ' ' || c == '\t' || c == '\n'; };
  size_t start = 0;
  bool all_blank = true;
  for (char c : text) all_blank = all_blank && is_blank(c);
  if (all_blank) return out;  // no tokens at all
  size_t index = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view item = text.substr(start, comma - start);
    while (!item.empty() && is_blank(item.front())) item.remove_prefix(1);
    while (!item.empty() && is_blank(item.back())) item.remove_suffix(1);
    bool ok = !item.empty() && item.size() <= 10;
    uint64_t v = 0;
    for (char c : item) {
      if (!std::isdigit(static_cast<unsigned char>(c))) {
        ok = false;
        break;
      }
      v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    if (!ok || v > UINT32_MAX) {
      return Status::InvalidArgument("token list item " + std::to_string(index + 1) + " (\"" +
                                     std::string(item) +
                                     "\") is not a token id (expected comma-separated integers "
                                     "0..4294967295, e.g. 1,2,3)");
    }
    out.push_back(static_cast<uint32_t>(v));
    ++index;
    start = comma + 1;
  }
  return out;
}

}  // namespace kvstore
