// Fuzzes kvstored's --config reading: CLI11's TOML/INI reader over the daemon's
// real option table (AddServerOptions, server_flags.cc: the sizes, durations,
// integers, flags and checks kvstored itself parses), then FinishServerOptions,
// and the unit parsers every size and duration goes through (ParseSize,
// ParseDuration, SplitHostPort) on the raw text.
#include <sstream>

#include <CLI/CLI.hpp>

#include "fuzz_util.h"
#include "kvstore/server/server_flags.h"
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
  server::ServerOptions o;
  server::AddServerOptions(app, o);
  // It opens the file it names: not a decoder of the config's bytes.
  app.remove_option(app.get_option("--token-file"));
  std::istringstream in(text);
  try {
    app.parse_from_stream(in);
  } catch (const CLI::Error&) {
    return 0;  // kvstored reports these and exits
  }
  (void)server::FinishServerOptions(app, o);
  (void)SplitHostPort(o.listen, &host, &port);
  (void)SplitHostPort(o.metrics, &host, &port);
  return 0;
}
