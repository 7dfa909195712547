// Byte-level tokenizer of the built-in model: token i < 256 is byte i, then
// BOS (256) and EOS (257). Any text round-trips; any model also accepts
// token ids directly, so this is only needed for the built-in vocabulary.
//
// Thread-safety: stateless; safe from any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kvstore::engine {

class ByteTokenizer {
 public:
  static constexpr int32_t kBos = 256;
  static constexpr int32_t kEos = 257;
  static constexpr int kVocabSize = 258;

  // The bytes of text, preceded by BOS when add_bos.
  static std::vector<int32_t> Encode(std::string_view text, bool add_bos = true);
  // Bytes of the byte tokens; special and out-of-range ids are skipped.
  static std::string Decode(std::span<const int32_t> tokens);
};

}  // namespace kvstore::engine
