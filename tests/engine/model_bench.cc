// kvstore-model-bench: prefill and decode throughput of the built-in model.
//
// Prints one line per backend and thread count: prefill tokens/s over a
// prompt of --prompt tokens, decode tokens/s over --decode greedy steps, and
// pack/unpack throughput of the prompt's KV blocks.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <string>

#include "kvstore/engine/model.h"
#include "kvstore/engine/sampler.h"
#include "kvstore/kernels/device.h"

using namespace kvstore;
using namespace kvstore::engine;

namespace {

bool Failed(const Status& st, const char* what) {
  if (st.ok()) return false;
  std::fprintf(stderr, "%s: %s\n", what, st.ToString().c_str());
  return true;
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

int Run(Backend backend, int threads, int prompt_len, int decode_steps, int reps) {
  ModelOptions o;
  o.backend = backend;
  o.num_threads = threads;
  o.kv_cache_blocks =
      (2 * prompt_len + decode_steps) / 16 + 8;  // the sequence and its unpacked copy
  auto model = Model::CreateBuiltin(1, o);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  Model& m = **model;
  std::vector<int32_t> prompt;
  for (int i = 0; i < prompt_len; ++i) prompt.push_back((i * 31 + 7) % 256);
  double prefill_s = 1e30, decode_s = 1e30, pack_s = 1e30, unpack_s = 1e30;
  size_t packed_bytes = 0;
  for (int r = 0; r < reps; ++r) {
    const SequenceId seq = m.kv_cache().CreateSequence();
    auto t0 = std::chrono::steady_clock::now();
    auto logits = m.Prefill(seq, prompt);
    prefill_s = std::min(prefill_s, Seconds(t0));
    if (Failed(logits.status(), "prefill")) return 1;
    Sampler greedy({});
    t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < decode_steps; ++i) {
      logits = m.Decode(seq, greedy.Sample(*logits));
      if (Failed(logits.status(), "decode")) return 1;
    }
    decode_s = std::min(decode_s, Seconds(t0));
    const int blocks = prompt_len / m.kv_cache().block_size();
    std::vector<std::byte> buf(blocks * m.kv_cache().PackedBlockBytes());
    packed_bytes = buf.size();
    t0 = std::chrono::steady_clock::now();
    if (Failed(m.kv_cache().PackBlocks(seq, 0, blocks, buf), "pack")) return 1;
    pack_s = std::min(pack_s, Seconds(t0));
    const SequenceId other = m.kv_cache().CreateSequence();
    t0 = std::chrono::steady_clock::now();
    if (Failed(m.kv_cache().UnpackBlocks(other, buf, blocks * m.kv_cache().block_size()), "unpack"))
      return 1;
    unpack_s = std::min(unpack_s, Seconds(t0));
    (void)m.kv_cache().FreeSequence(seq);
    (void)m.kv_cache().FreeSequence(other);
  }
  std::printf(
      "backend=%s threads=%d  prefill %d tok: %8.0f tok/s (%.1f ms)  decode %d tok: %7.0f tok/s "
      "(%.2f ms/tok)  pack %.2f GB/s  unpack %.2f GB/s  (%zu KiB)\n",
      std::string(BackendName(m.backend())).c_str(), threads, prompt_len, prompt_len / prefill_s,
      prefill_s * 1e3, decode_steps, decode_steps / decode_s, decode_s * 1e3 / decode_steps,
      packed_bytes / pack_s / 1e9, packed_bytes / unpack_s / 1e9, packed_bytes / 1024);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Prefill and decode throughput of the built-in tiny Llama model"};
  int prompt_len = 512, decode_steps = 128, reps = 3;
  std::vector<int> threads = {1, 2};
  app.add_option("--prompt", prompt_len, "prompt tokens")->check(CLI::Range(1, 4000));
  app.add_option("--decode", decode_steps, "decode steps")->check(CLI::Range(1, 4000));
  app.add_option("--reps", reps, "repetitions; the best is reported")->check(CLI::Range(1, 100));
  app.add_option("--threads", threads, "CPU thread counts to run");
  bool cuda = false;
  app.add_flag("--cuda", cuda, "also run the CUDA backend (fails without a usable GPU)");
  CLI11_PARSE(app, argc, argv);
  const kernels::Status gpu = kernels::CudaDeviceStatus();
  std::printf("model: %s; GPU: %s\n", TinyConfig().name.c_str(),
              gpu.ok() ? "present" : gpu.message().c_str());
  for (int t : threads)
    if (Run(Backend::kCpu, t, prompt_len, decode_steps, reps) != 0) return 1;
  if (cuda && Run(Backend::kCuda, 1, prompt_len, decode_steps, reps) != 0) return 1;
  return 0;
}
