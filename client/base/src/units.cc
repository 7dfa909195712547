// Sizes and durations as people type them in flags and read them in tables.
//
// ParseSize accepts an optional fraction ("1.5GiB") and optional blanks before the unit, so
// FormatSize's output ("1.5 GiB") parses back. ParseDuration accepts sequences such as
// "1h30m" or "10m0s", so FormatDuration's output parses back too.
#include "kvstore/units.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>

namespace kvstore {
namespace {

constexpr uint64_t kKiB = 1024;

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Reads a non-negative decimal number ("12", "1.5", ".5") off the front of `s`.
// Returns false when no digit was found.
bool ConsumeNumber(std::string_view* s, uint64_t* whole, double* fraction, bool* has_fraction) {
  size_t i = 0;
  bool any = false;
  uint64_t w = 0;
  while (i < s->size() && std::isdigit(static_cast<unsigned char>((*s)[i]))) {
    uint64_t digit = static_cast<uint64_t>((*s)[i] - '0');
    if (w > (std::numeric_limits<uint64_t>::max() - digit) / 10) return false;  // overflow
    w = w * 10 + digit;
    any = true;
    ++i;
  }
  double f = 0;
  *has_fraction = false;
  if (i < s->size() && (*s)[i] == '.') {
    ++i;
    double scale = 0.1;
    while (i < s->size() && std::isdigit(static_cast<unsigned char>((*s)[i]))) {
      f += scale * ((*s)[i] - '0');
      scale /= 10;
      any = true;
      *has_fraction = true;
      ++i;
    }
  }
  if (!any) return false;
  *whole = w;
  *fraction = f;
  s->remove_prefix(i);
  return true;
}

// Multiplies whole.fraction by `unit`, refusing overflow. Fractions of a base unit round down.
bool Scale(uint64_t whole, double fraction, uint64_t unit, uint64_t* out) {
  if (whole != 0 && unit > std::numeric_limits<uint64_t>::max() / whole) return false;
  uint64_t base = whole * unit;
  auto extra = static_cast<uint64_t>(fraction * static_cast<double>(unit));
  if (base > std::numeric_limits<uint64_t>::max() - extra) return false;
  *out = base + extra;
  return true;
}

Status BadSize(std::string_view text, std::string_view why) {
  return Status::InvalidArgument("cannot parse size \"" + std::string(text) +
                                 "\": " + std::string(why) +
                                 " (examples: 4096, 64KiB, 512MiB, 4GiB, 1.5GB)");
}

Status BadDuration(std::string_view text, std::string_view why) {
  return Status::InvalidArgument("cannot parse duration \"" + std::string(text) + "\": " +
                                 std::string(why) + " (examples: 250ms, 10s, 10m, 1h30m, 2d)");
}

// "1.50" -> "1.5", "2.0" -> "2".
std::string TrimZeros(std::string s) {
  if (s.find('.') == std::string::npos) return s;
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

}  // namespace

Result<uint64_t> ParseSize(std::string_view text) {
  std::string_view s = Trim(text);
  if (s.empty()) return BadSize(text, "empty");
  uint64_t whole = 0;
  double fraction = 0;
  bool has_fraction = false;
  if (!ConsumeNumber(&s, &whole, &fraction, &has_fraction)) {
    return BadSize(text, "expected a number first");
  }
  std::string unit = Lower(Trim(s));
  uint64_t mult = 0;
  if (unit.empty() || unit == "b") {
    mult = 1;
  } else if (unit == "k" || unit == "kib") {
    mult = kKiB;
  } else if (unit == "m" || unit == "mib") {
    mult = kKiB * kKiB;
  } else if (unit == "g" || unit == "gib") {
    mult = kKiB * kKiB * kKiB;
  } else if (unit == "t" || unit == "tib") {
    mult = kKiB * kKiB * kKiB * kKiB;
  } else if (unit == "p" || unit == "pib") {
    mult = kKiB * kKiB * kKiB * kKiB * kKiB;
  } else if (unit == "e" || unit == "eib") {
    mult = kKiB * kKiB * kKiB * kKiB * kKiB * kKiB;
  } else if (unit == "kb") {
    mult = 1000ull;
  } else if (unit == "mb") {
    mult = 1000ull * 1000;
  } else if (unit == "gb") {
    mult = 1000ull * 1000 * 1000;
  } else if (unit == "tb") {
    mult = 1000ull * 1000 * 1000 * 1000;
  } else if (unit == "pb") {
    mult = 1000ull * 1000 * 1000 * 1000 * 1000;
  } else if (unit == "eb") {
    mult = 1000ull * 1000 * 1000 * 1000 * 1000 * 1000;
  } else {
    return BadSize(text, "unknown unit \"" + std::string(Trim(s)) + "\"");
  }
  uint64_t out = 0;
  if (!Scale(whole, fraction, mult, &out)) return BadSize(text, "too large");
  return out;
}

std::string FormatSize(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < kKiB) return std::to_string(bytes) + " B";
  double v = static_cast<double>(bytes);
  size_t u = 0;
  while (v >= 1024.0 && u + 1 < std::size(kUnits)) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", v);
  // 1048575 B is 1023.99 KiB, which rounds to "1024.0": show it as the next unit.
  if (std::string_view(buf) == "1024.0" && u + 1 < std::size(kUnits)) {
    ++u;
    std::snprintf(buf, sizeof(buf), "1");
  }
  return TrimZeros(buf) + " " + kUnits[u];
}

Result<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  std::string_view s = Trim(text);
  if (s.empty()) return BadDuration(text, "empty");
  uint64_t total_ms = 0;
  bool first = true;
  while (!s.empty()) {
    uint64_t whole = 0;
    double fraction = 0;
    bool has_fraction = false;
    if (!ConsumeNumber(&s, &whole, &fraction, &has_fraction)) {
      return BadDuration(text, "expected a number");
    }
    size_t n = 0;
    while (n < s.size() && std::isalpha(static_cast<unsigned char>(s[n]))) ++n;
    std::string unit = Lower(s.substr(0, n));
    s.remove_prefix(n);
    uint64_t mult = 0;
    if (unit.empty()) {
      // A bare number is seconds, but only on its own: "10m5" is a typo, not 10m5s.
      if (!first || !s.empty()) return BadDuration(text, "missing unit");
      mult = 1000;
    } else if (unit == "ms") {
      mult = 1;
    } else if (unit == "s") {
      mult = 1000;
    } else if (unit == "m") {
      mult = 60 * 1000;
    } else if (unit == "h") {
      mult = 3600 * 1000;
    } else if (unit == "d") {
      mult = 24ull * 3600 * 1000;
    } else {
      return BadDuration(text, "unknown unit \"" + unit + "\"");
    }
    uint64_t part = 0;
    if (!Scale(whole, fraction, mult, &part) ||
        total_ms > std::numeric_limits<int64_t>::max() - part) {
      return BadDuration(text, "too large");
    }
    total_ms += part;
    first = false;
  }
  return std::chrono::milliseconds(static_cast<int64_t>(total_ms));
}

std::string FormatDuration(std::chrono::milliseconds d) {
  int64_t ms = d.count();
  std::string sign;
  if (ms < 0) {
    sign = "-";
    // The most negative value has no positive twin; one millisecond does not matter here.
    ms = ms == std::numeric_limits<int64_t>::min() ? std::numeric_limits<int64_t>::max() : -ms;
  }
  if (ms == 0) return "0s";
  if (ms < 1000) return sign + std::to_string(ms) + "ms";
  int64_t hours = ms / 3600000;
  int64_t minutes = (ms / 60000) % 60;
  int64_t sec_ms = ms % 60000;
  char secs[32];
  std::snprintf(secs, sizeof(secs), "%lld.%03lld", static_cast<long long>(sec_ms / 1000),
                static_cast<long long>(sec_ms % 1000));
  std::string out = sign;
  if (hours > 0) out += std::to_string(hours) + "h";
  if (hours > 0 || minutes > 0) out += std::to_string(minutes) + "m";
  out += TrimZeros(secs) + "s";
  return out;
}

Status SplitHostPort(std::string_view text, std::string* host, uint16_t* port) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument("bad address \"" + std::string(text) +
                                   "\": " + std::string(why) +
                                   " (expected HOST:PORT, e.g. 127.0.0.1:7400 or [::1]:7400)");
  };
  std::string_view h;
  std::string_view p;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return bad("missing ']'");
    h = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') return bad("missing :PORT after ']'");
    p = rest.substr(1);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("missing :PORT");
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
    if (h.find(':') != std::string_view::npos) return bad("IPv6 hosts go in brackets");
  }
  if (h.empty()) return bad("empty host");
  if (p.empty() || p.size() > 5) return bad("port must be a number from 0 to 65535");
  uint32_t value = 0;
  for (char c : p) {
    if (!std::isdigit(static_cast<unsigned char>(c))) {
      return bad("port must be a number from 0 to 65535");
    }
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (value > 65535) return bad("port must be a number from 0 to 65535");
  *host = std::string(h);
  *port = static_cast<uint16_t>(value);
  return Status::Ok();
}

}  // namespace kvstore
