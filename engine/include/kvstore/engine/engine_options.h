// EngineOptions: everything kvstore-engine is configured with, parsed once in
// main() from flags and passed down. Every field has its default here.
//
// Thread-safety: a plain value; copy it freely.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kvstore/status.h"

namespace kvstore::engine {

// What one kvstore-engine process does.
//   kBoth    a plain single engine: prefill and decode locally (the baseline).
//   kPrefill runs the prompt, inserts every full block's KV into kvstored under
//            its prefix-hash key, answers with the first token.
//   kDecode  drop_selects those blocks, computes the partial tail, decodes.
//   kProxy   no model: sends each request to a prefill engine (max_tokens=1),
//            then to a decode engine, and relays the decode's answer.
enum class Role : uint8_t { kBoth, kPrefill, kDecode, kProxy };
std::string_view RoleName(Role role);
Result<Role> ParseRole(std::string_view text);

// What decode does when the KV of a prompt does not arrive in time, is
// corrupt (DataLoss) or the store is unreachable.
enum class KvMissPolicy : uint8_t { kRecompute, kFail };
std::string_view KvMissPolicyName(KvMissPolicy policy);
Result<KvMissPolicy> ParseKvMissPolicy(std::string_view text);

struct EngineOptions {
  Role role = Role::kBoth;
  std::string listen = "127.0.0.1:8100";    // HTTP HOST:PORT
  std::string store = "127.0.0.1:7400";     // kvstored HOST:PORT (prefill, decode)
  std::string kv_transport = "auto";        // ClientOptions::transport: auto|tcp|local|rdma
  std::string model = "builtin";            // "builtin" or a Hugging Face checkpoint dir
  uint64_t model_seed = 1;                  // weights seed of the built-in model
  std::string model_name = "kvstore-tiny";  // "model" field of responses
  KvMissPolicy on_kv_miss = KvMissPolicy::kRecompute;
  std::chrono::milliseconds kv_timeout{10000};  // decode's drop_select wait
  std::chrono::milliseconds kv_ttl{0};          // TTL of inserted blocks; 0 = the store's default
  int threads = 1;                              // CPU threads of the model
  int io_threads = 1;                           // HTTP I/O threads (one io_context)
  int kv_cache_blocks = 2048;                   // paged KV cache size, in blocks
  int prefill_chunk_blocks = 1;                 // prefill computes this many blocks per step,
                                                // so inserts overlap the next chunk
  int kv_load_threads = 4;                      // decode: concurrent drop_selects
  int max_batch = 32;                           // decode: sequences per DecodeBatch step
  int max_prefill_chunk = 0;           // both: prompt tokens per step, batched with the running
                                       // decodes (chunked prefill); 0: whole prompts at admission
  std::string chat_template = "auto";  // auto | llama3 | chatml | plain (chat_template.h)
  int max_tokens_limit = 4096;         // largest max_tokens a request may ask
  std::vector<std::string> prefill_urls;               // proxy
  std::vector<std::string> decode_urls;                // proxy
  std::chrono::milliseconds upstream_timeout{300000};  // proxy: per upstream request
  bool proxy_overlap = false;  // proxy: send decode without waiting for prefill's answer
};

}  // namespace kvstore::engine
