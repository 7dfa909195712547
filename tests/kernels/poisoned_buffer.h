// Test helpers: buffers with poisoned guard regions on both sides, to catch
// kernels that write out of bounds, and seeded random fills.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace kvstore::kernels::testing {

inline constexpr uint32_t kPoisonBits = 0x7fc0dead;  // a NaN no kernel produces
inline constexpr size_t kGuard = 64;

template <typename T>
class PoisonedBuffer {
 public:
  explicit PoisonedBuffer(size_t n) : n_(n), all_(n + 2 * kGuard) {
    for (auto& v : all_)
      std::memcpy(&v, &kPoisonBits, sizeof(uint32_t) < sizeof(T) ? sizeof(uint32_t) : sizeof(T));
  }
  T* data() { return all_.data() + kGuard; }
  const T* data() const { return all_.data() + kGuard; }
  size_t size() const { return n_; }
  T& operator[](size_t i) { return data()[i]; }
  const T& operator[](size_t i) const { return data()[i]; }
  // True when both guard regions still hold the poison.
  bool GuardsIntact() const {
    for (size_t i = 0; i < kGuard; ++i)
      if (!IsPoison(all_[i]) || !IsPoison(all_[kGuard + n_ + i])) return false;
    return true;
  }
  static bool IsPoison(const T& v) {
    uint32_t bits = 0;
    std::memcpy(&bits, &v, sizeof(uint32_t) < sizeof(T) ? sizeof(uint32_t) : sizeof(T));
    return bits == (sizeof(T) >= 4 ? kPoisonBits : (kPoisonBits & ((1u << (8 * sizeof(T))) - 1)));
  }
  // The whole allocation, guards included (to mirror it on a device).
  T* raw() { return all_.data(); }
  size_t raw_size() const { return all_.size(); }
  std::vector<T> Interior() const { return std::vector<T>(data(), data() + n_); }

 private:
  size_t n_;
  std::vector<T> all_;
};

inline std::vector<float> RandomFloats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

}  // namespace kvstore::kernels::testing
