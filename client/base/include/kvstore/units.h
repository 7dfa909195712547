// Parsing and printing of sizes ("512MiB") and durations ("10m", "250ms"), shared by
// the daemon's flags, the CLI and the benchmarks.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "kvstore/status.h"

namespace kvstore {

// "4096", "64KiB", "512MiB", "4GiB", "1TiB" (also KB/MB/GB as powers of 1000, and "k/m/g" as
// binary). InvalidArgument names the text that did not parse.
Result<uint64_t> ParseSize(std::string_view text);
// "1.5 GiB", "640 KiB", "12 B".
std::string FormatSize(uint64_t bytes);
// "250ms", "10s", "10m", "2h", "1d"; a bare number is seconds.
Result<std::chrono::milliseconds> ParseDuration(std::string_view text);
// "10m0s", "1.5s", "250ms".
std::string FormatDuration(std::chrono::milliseconds d);
// Splits "HOST:PORT" ("[::1]:7400" for IPv6); InvalidArgument when malformed.
Status SplitHostPort(std::string_view text, std::string* host, uint16_t* port);

}  // namespace kvstore
