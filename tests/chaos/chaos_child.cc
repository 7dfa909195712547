#include "chaos_child.h"

#include <cstdio>
#include <random>
#include <thread>

#include <CLI/CLI.hpp>

#include "ledger.h"

namespace kvstore::chaos {

size_t ChildValueSize(const Key& key) { return SizeFor(key, 2 << 20, 16 << 20); }

std::vector<std::string> DurableArgs(const std::string& help) {
  const size_t at = help.find("--durability");
  const std::string text = help.substr(at, 400);
  // Whatever word the flag documents for "acknowledged means on disk".
  for (const char* v : {"sync", "durable", "fsync", "full", "always"}) {
    if (text.find(v) != std::string::npos) return {"--durability", v};
  }
  return {"--durability"};
}

int ChildMain(int argc, char** argv) {
  std::string role, address, transport = "auto";
  uint64_t run = 0, base = 0, count = 0, seed = 1;
  CLI::App app{"kvstore-chaos child"};
  app.add_option("--child", role)->required();
  app.add_option("--address", address)->required();
  app.add_option("--transport", transport);
  app.add_option("--run", run);
  app.add_option("--base", base);
  app.add_option("--count", count);
  app.add_option("--seed", seed);
  CLI11_PARSE(app, argc, argv);
  ClientOptions o;
  o.address = address;
  o.transport = transport;
  o.client_name = "chaos-" + role;
  auto client = Client::Connect(o);
  if (!client.ok()) {
    std::fprintf(stderr, "connect: %s\n", client.status().ToString().c_str());
    return 1;
  }
  std::mt19937_64 rng(seed);
  if (role == "insert") {
    for (uint64_t i = base; i < base + count; ++i) {
      const Key key = ChaosKey(run, i);
      auto r = (*client)->Insert(key, ValueFor(key, ChildValueSize(key)));
      std::printf("%s %s\n", r.ok() ? "inserted" : "refused", key.ToHex().c_str());
      std::fflush(stdout);
    }
    return 0;
  }
  for (;;) {
    const Key key = ChaosKey(run, rng() % count);
    if (rng() % 2 == 0) {
      auto r = (*client)->DropSelect(std::span<const Key>(&key, 1), std::chrono::milliseconds(200));
      if (r.ok()) {
        std::printf("took %s\n", key.ToHex().c_str());
        std::fflush(stdout);
      }
    } else {
      (void)(*client)->Select(std::span<const Key>(&key, 1));
    }
  }
}

}  // namespace kvstore::chaos
