#include "ledger.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

namespace kvstore::chaos {

Key ChaosKey(uint64_t run, uint64_t i) {
  static const Key seed = NamespaceSeed("kvstore-chaos");
  const uint32_t tokens[4] = {static_cast<uint32_t>(run), static_cast<uint32_t>(run >> 32),
                              static_cast<uint32_t>(i), static_cast<uint32_t>(i >> 32)};
  return ChainKey(seed, tokens, 4);
}

namespace {

uint64_t Word(const Key& key, size_t at) {
  uint64_t w;
  std::memcpy(&w, key.bytes.data() + at, 8);
  return w;
}

}  // namespace

size_t SizeFor(const Key& key, size_t min, size_t max) {
  return min + static_cast<size_t>(Word(key, 8) % (max - min + 1));
}

std::vector<std::byte> ValueFor(const Key& key, size_t size) {
  std::vector<std::byte> v(size);
  uint64_t x = Word(key, 0) | 1;  // xorshift64*: fast, and never all zero
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    const uint64_t r = x * 0x2545f4914f6cdd1dull;
    std::memcpy(v.data() + i, &r, 8);
  }
  for (; i < size; ++i) v[i] = static_cast<std::byte>(i ^ Word(key, 16));
  return v;
}

std::optional<std::string> CheckValue(const Key& key, size_t expected_size, const EntryMeta& meta,
                                      std::span<const std::byte> value) {
  if (meta.size != expected_size) {
    return "size " + std::to_string(meta.size) + ", wrote " + std::to_string(expected_size);
  }
  const auto want = ValueFor(key, expected_size);
  if (meta.checksum != ValueChecksum(want)) return "metadata checksum differs from the value's";
  if (value.size() != want.size()) {
    return "served " + std::to_string(value.size()) + " bytes of " + std::to_string(want.size());
  }
  if (std::memcmp(value.data(), want.data(), want.size()) != 0) {
    auto mismatch = std::mismatch(value.begin(), value.end(), want.begin());
    return "bytes differ from offset " + std::to_string(mismatch.first - value.begin());
  }
  return std::nullopt;
}

void Ledger::Attempt(const Key& key, size_t size) {
  std::lock_guard lock(mu_);
  keys_.try_emplace(key, Expect{size, false});
}

void Ledger::Ack(const Key& key) {
  std::lock_guard lock(mu_);
  auto it = keys_.find(key);
  if (it == keys_.end() || it->second.acked) return;
  it->second.acked = true;
  acked_order_.push_back(key);
  ++acknowledged_total_;
  acknowledged_bytes_ += it->second.size;
}

void Ledger::Forget(const Key& key) {
  std::lock_guard lock(mu_);
  keys_.erase(key);
}

uint64_t Ledger::acknowledged_total() const {
  std::lock_guard lock(mu_);
  return acknowledged_total_;
}

uint64_t Ledger::acknowledged_bytes() const {
  std::lock_guard lock(mu_);
  return acknowledged_bytes_;
}

std::optional<size_t> Ledger::SizeOf(const Key& key) const {
  std::lock_guard lock(mu_);
  auto it = keys_.find(key);
  if (it == keys_.end()) return std::nullopt;
  return it->second.size;
}

std::optional<Key> Ledger::RandomAcked(uint64_t seed) const {
  std::lock_guard lock(mu_);
  if (acked_order_.empty()) return std::nullopt;
  return acked_order_[seed % acked_order_.size()];
}

VerifyResult Ledger::Verify(Client& client) {
  VerifyResult r;
  auto problem = [&r](const std::string& what) {
    if (r.first_problem.empty()) r.first_problem = what;
  };
  ListOptions lo;
  lo.limit = 1000;
  for (;;) {
    auto page = client.List(lo);
    if (!page.ok()) {
      problem("list: " + page.status().ToString());
      ++r.corrupt;  // an unlistable store is not a verified one
      break;
    }
    for (const auto& e : page->entries) r.present.push_back(e.key);
    if (page->next_cursor.empty()) break;
    lo.cursor = page->next_cursor;
  }
  r.listed = r.present.size();

  for (const Key& key : r.present) {
    auto size = SizeOf(key);
    if (!size) {
      ++r.phantom;
      problem("listed but never written: " + key.ToHex());
      continue;
    }
    auto got = client.Select(std::span<const Key>(&key, 1));
    // A read-back the store refuses for room (ResourceExhausted) says "retry later".
    for (int attempt = 0;
         attempt < 4 && !got.ok() && got.status().code() == StatusCode::kResourceExhausted;
         ++attempt) {
      if (attempt == 0) ++r.retried;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
      got = client.Select(std::span<const Key>(&key, 1));
    }
    if (!got.ok()) {
      if (got.status().code() != StatusCode::kNotFound) {
        ++r.refused;
        if (r.first_refusal.empty()) r.first_refusal = got.status().ToString();
      }
      continue;
    }
    ++r.read;
    const Entry& e = got->front();
    if (auto bad = CheckValue(key, *size, e.meta, e.value)) {
      ++r.corrupt;
      problem("corrupt read of " + key.ToHex() + ": " + *bad);
    }
  }

  std::unordered_map<Key, bool, KeyHash> listed;
  for (const Key& k : r.present) listed.emplace(k, true);
  std::lock_guard lock(mu_);
  for (auto it = keys_.begin(); it != keys_.end();) {
    if (it->second.acked && !listed.contains(it->first)) {
      ++r.lost;
      it = keys_.erase(it);
    } else {
      ++it;
    }
  }
  std::erase_if(acked_order_, [this](const Key& k) { return !keys_.contains(k); });
  return r;
}

}  // namespace kvstore::chaos
