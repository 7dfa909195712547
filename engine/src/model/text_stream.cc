#include "kvstore/engine/text_stream.h"

#include <algorithm>

namespace kvstore::engine {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

// Bytes of the sequence that lead byte c starts; 0 when c cannot start one.
int SequenceLength(unsigned char c) {
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return 2;
  if (c >= 0xE0 && c <= 0xEF) return 3;
  if (c >= 0xF0 && c <= 0xF4) return 4;
  return 0;
}

// Whether b may follow lead byte lead at position i (1-based) of its sequence
// (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF).
bool ValidContinuation(unsigned char lead, int i, unsigned char b) {
  if ((b & 0xC0) != 0x80) return false;
  if (i != 1) return true;
  if (lead == 0xE0) return b >= 0xA0;
  if (lead == 0xED) return b <= 0x9F;
  if (lead == 0xF0) return b >= 0x90;
  if (lead == 0xF4) return b <= 0x8F;
  return true;
}

// Length of the valid sequence at s[pos], 0 if invalid, -1 if s ends inside
// a sequence that is valid so far.
int ValidAt(std::string_view s, size_t pos) {
  const auto lead = static_cast<unsigned char>(s[pos]);
  const int n = SequenceLength(lead);
  if (n == 0) return 0;
  for (int i = 1; i < n; ++i) {
    if (pos + i >= s.size()) return -1;
    if (!ValidContinuation(lead, i, static_cast<unsigned char>(s[pos + i]))) return 0;
  }
  return n;
}

}  // namespace

size_t CompleteUtf8Prefix(std::string_view bytes) {
  for (size_t pos = 0; pos < bytes.size();) {
    const int n = ValidAt(bytes, pos);
    if (n < 0) return pos;
    pos += n > 0 ? n : 1;
  }
  return bytes.size();
}

std::string SanitizeUtf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t pos = 0; pos < bytes.size();) {
    const int n = ValidAt(bytes, pos);
    if (n > 0) {
      out.append(bytes.substr(pos, n));
      pos += n;
    } else {
      out.append(kReplacement);
      ++pos;
    }
  }
  return out;
}

TextStream::TextStream(std::vector<std::string> stop_strings) : stops_(std::move(stop_strings)) {
  std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
}

std::string TextStream::Add(std::string_view bytes, bool* stopped) {
  if (stopped_) {
    *stopped = true;
    return {};
  }
  raw_.append(bytes);
  const size_t complete = CompleteUtf8Prefix(raw_);
  held_ += SanitizeUtf8(std::string_view(raw_).substr(0, complete));
  raw_.erase(0, complete);
  std::string out = Release(/*at_end=*/false);
  *stopped = stopped_;
  return out;
}

std::string TextStream::Finish() {
  if (stopped_) return {};
  held_ += SanitizeUtf8(raw_);
  raw_.clear();
  return Release(/*at_end=*/true);
}

std::string TextStream::Release(bool at_end) {
  // The earliest stop string wins.
  size_t first = std::string::npos;
  for (const std::string& s : stops_) first = std::min(first, held_.find(s));
  if (first != std::string::npos) {
    stopped_ = true;
    raw_.clear();
    std::string out = held_.substr(0, first);
    held_.clear();
    return out;
  }
  size_t keep = 0;  // longest suffix of held_ that is a proper prefix of a stop string
  if (!at_end) {
    for (const std::string& s : stops_)
      for (size_t n = std::min(s.size() - 1, held_.size()); n > keep; --n)
        if (held_.compare(held_.size() - n, n, s, 0, n) == 0) {
          keep = n;
          break;
        }
  }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

}  // namespace kvstore::engine
