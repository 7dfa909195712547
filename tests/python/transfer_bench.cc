// The C++ client doing the transfers the vLLM connector benchmark does
// (bench_connector.py runs it between its own rounds): for each layer, insert
// every block's value (K+V of one block of one layer) from a registered region
// under its per-layer key, then drop_select each layer's blocks into a second
// registered region. Prints one JSON line: {"save_s":..., "load_s":..., "bytes":...}.
// A benchmark program, not a test.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "kvstore/client.h"

namespace {
using Clock = std::chrono::steady_clock;

int Fail(const char* what, const kvstore::Status& s) {
  std::fprintf(stderr, "transfer_bench: %s: %s\n", what, s.ToString().c_str());
  return 1;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"C++ client baseline for bench_connector.py"};
  std::string address, ns = "transfer-bench";
  size_t blocks = 64, layers = 32, block_bytes = 64 * 1024, block_size = 16, threads = 1;
  double timeout_s = 60;
  app.add_option("--address", address, "HOST:PORT of kvstored")->required();
  app.add_option("--namespace", ns, "Key namespace (use a fresh one per round)");
  app.add_option("--blocks", blocks, "Blocks per request")->capture_default_str();
  app.add_option("--layers", layers, "Layers")->capture_default_str();
  app.add_option("--block-bytes", block_bytes, "Bytes per block per layer")->capture_default_str();
  app.add_option("--threads", threads,
                 "Inserts in flight at once per layer (as the connector's "
                 "send_threads)")
      ->capture_default_str();
  app.add_option("--timeout", timeout_s, "drop_select timeout, seconds")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  kvstore::ClientOptions options;
  options.address = address;
  options.client_name = "transfer-bench";
  auto client = kvstore::Client::Connect(options);
  if (!client.ok()) return Fail("connect", client.status());
  auto& c = **client;

  // Keys as the connector derives them: block keys of the tokens, layer mixed into the last step.
  std::vector<uint32_t> tokens(blocks * block_size);
  std::iota(tokens.begin(), tokens.end(), 1u);
  auto block_keys = kvstore::PrefixKeys(tokens, {.ns = ns, .block_size = uint32_t(block_size)});
  std::vector<std::vector<kvstore::Key>> keys(layers);
  for (size_t l = 0; l < layers; ++l) {
    std::string extra = "layer=" + std::to_string(l);
    auto e = std::as_bytes(std::span(extra));
    for (size_t b = 0; b < blocks; ++b) {
      kvstore::Key parent = b == 0 ? kvstore::NamespaceSeed(ns) : block_keys[b - 1];
      keys[l].push_back(kvstore::ChainKey(
          parent, std::span(tokens).subspan(b * block_size, block_size), uint32_t(block_size), e));
    }
  }
  // One layer's staging of blocks x block_bytes, as the connector's staging buffers.
  std::vector<std::byte> src(blocks * block_bytes * layers), dst(src.size());
  std::mt19937_64 rng(42);
  for (size_t i = 0; i < src.size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(&src[i], &v, std::min<size_t>(8, src.size() - i));
  }
  auto rs = c.RegisterRegion(src);
  auto rd = c.RegisterRegion(dst);
  if (!rs.ok()) return Fail("register", rs.status());
  if (!rd.ok()) return Fail("register", rd.status());

  auto t0 = Clock::now();
  for (size_t l = 0; l < layers; ++l) {
    // Blocks of a layer split over `threads` threads, like the connector's insert_many_from.
    std::vector<kvstore::Status> errors(threads);
    auto insert_part = [&](size_t t) {
      for (size_t b = t; b < blocks; b += threads) {
        kvstore::RegionSlice s{*rs, (l * blocks + b) * block_bytes, block_bytes};
        kvstore::InsertOptions io;
        io.layout = "bench";
        auto r = c.InsertFromRegion(keys[l][b], s, io);
        if (!r.ok()) {
          errors[t] = r.status();
          return;
        }
      }
    };
    std::vector<std::thread> pool;
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(insert_part, t);
    insert_part(0);
    for (auto& t : pool) t.join();
    for (const auto& e : errors) {
      if (!e.ok()) return Fail("insert", e);
    }
  }
  auto t1 = Clock::now();
  for (size_t l = 0; l < layers; ++l) {
    std::vector<kvstore::RegionSlice> slices;
    for (size_t b = 0; b < blocks; ++b)
      slices.push_back({*rd, (l * blocks + b) * block_bytes, block_bytes});
    auto r = c.DropSelectIntoRegions(keys[l], slices,
                                     std::chrono::milliseconds(int64_t(timeout_s * 1000)));
    if (!r.ok()) return Fail("drop_select", r.status());
  }
  auto t2 = Clock::now();
  if (src != dst) {
    std::fprintf(stderr, "transfer_bench: loaded bytes differ from saved ones\n");
    return 1;
  }
  std::printf("{\"save_s\": %.6f, \"load_s\": %.6f, \"bytes\": %zu}\n",
              std::chrono::duration<double>(t1 - t0).count(),
              std::chrono::duration<double>(t2 - t1).count(), src.size());
  return 0;
}
