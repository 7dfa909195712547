// Fuzzes kvstored's --config reading: CLI11's TOML/INI reader with options of
// the daemon's kinds (strings, sizes, durations, integers, flags) and then the
// unit parsers every size and duration goes through (ParseSize, ParseDuration,
// SplitHostPort). The daemon's option table lives in kvstored_main.cc; once it
// is a function of its own this target should call that instead of the
// representative table below.
#include <sstream>

#include <CLI/CLI.hpp>

#include "fuzz_util.h"
#include "kvstore/units.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvstore;
  std::string text(reinterpret_cast<const char*>(data), size);

  // The unit parsers alone, on the raw text: they also read flags.
  if (auto v = ParseSize(text); v.ok()) {
    // What FormatSize prints parses back, except at the very top of the range where
    // rounding to one decimal ("16 EiB") passes 2^64.
    auto again = ParseSize(FormatSize(*v));
    FUZZ_CHECK(again.ok() || *v >= (15ull << 60));
  }
  (void)ParseDuration(text);
  std::string host;
  uint16_t port = 0;
  (void)SplitHostPort(text, &host, &port);

  CLI::App app{"kvstored config fuzz"};
  std::string listen = "127.0.0.1:7070", metrics = "127.0.0.1:9090", memory = "512MiB", spill = "0",
              ttl = "10m", stall = "30s", data_dir, log_level = "info";
  int io_threads = 2;
  size_t max_connections = 1024;
  bool no_flush = false, no_mlock = false;
  app.add_option("--listen", listen);
  app.add_option("--metrics", metrics);
  app.add_option("--memory", memory);
  app.add_option("--spill", spill);
  app.add_option("--ttl", ttl);
  app.add_option("--stall-timeout", stall);
  app.add_option("--data-dir", data_dir);
  app.add_option("--io-threads", io_threads)->check(CLI::Range(1, 64));
  app.add_option("--max-connections", max_connections);
  app.add_option("--log-level", log_level)
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_flag("--no-flush-on-shutdown", no_flush);
  app.add_flag("--no-mlock", no_mlock);
  std::istringstream in(text);
  try {
    app.parse_from_stream(in);
  } catch (const CLI::Error&) {
    return 0;  // kvstored reports these and exits 2
  }
  for (const std::string* s : {&memory, &spill}) (void)ParseSize(*s);
  for (const std::string* s : {&ttl, &stall}) (void)ParseDuration(*s);
  (void)SplitHostPort(listen, &host, &port);
  (void)SplitHostPort(metrics, &host, &port);
  return 0;
}
