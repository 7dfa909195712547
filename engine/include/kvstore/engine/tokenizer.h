// Tokenizers: text <-> token ids.
//
// Tokenizer is what the serving side uses: Encode a prompt (special tokens
// written in the text, e.g. "<|eot_id|>", become their ids), and TokenBytes
// for detokenizing (a token's raw bytes; several byte tokens may together
// make one UTF-8 character, so text is assembled by TextStream, which never
// splits a character). Implementations:
//   - the built-in model's byte-level vocabulary (ByteTokenizer below);
//   - tokenizer.json with a byte-level BPE model (Llama-3 / GPT-2 style), see
//     bpe_tokenizer.h;
//   - tokenizer.model through SentencePiece, see sentencepiece_tokenizer.h.
// Token ids are accepted everywhere, so a checkpoint without tokenizer files
// still serves token-id prompts. (Encode is EncodeText so the byte
// tokenizer's static Encode keeps its name.)
//
// Thread-safety: a Tokenizer is immutable after loading; safe from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvstore/status.h"

namespace kvstore::engine {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // "byte", "bpe (tokenizer.json)", "sentencepiece (tokenizer.model)".
  virtual std::string Name() const = 0;
  virtual int VocabSize() const = 0;
  // The ids of text; BOS first when add_bos and the vocabulary has one.
  virtual Result<std::vector<int32_t>> EncodeText(std::string_view text, bool add_bos) const = 0;
  // The bytes token id stands for in text; empty for special/control tokens
  // and out-of-range ids.
  virtual std::string TokenBytes(int32_t id) const = 0;
  // The id of a special token spelled exactly so ("<|eot_id|>"), if any.
  virtual std::optional<int32_t> SpecialTokenId(std::string_view text) const = 0;
  virtual std::optional<int32_t> BosId() const = 0;

  // Concatenated TokenBytes (may hold incomplete UTF-8 at the end).
  std::string DecodeBytes(std::span<const int32_t> ids) const;
};

// Byte-level tokenizer of the built-in model: token i < 256 is byte i, then
// BOS (256) and EOS (257). Any text round-trips.
class ByteTokenizer final : public Tokenizer {
 public:
  static constexpr int32_t kBos = 256;
  static constexpr int32_t kEos = 257;
  static constexpr int kVocabSize = 258;

  // The bytes of text, preceded by BOS when add_bos.
  static std::vector<int32_t> Encode(std::string_view text, bool add_bos = true);
  // Bytes of the byte tokens; special and out-of-range ids are skipped.
  static std::string Decode(std::span<const int32_t> tokens);

  std::string Name() const override { return "byte"; }
  int VocabSize() const override { return kVocabSize; }
  Result<std::vector<int32_t>> EncodeText(std::string_view text, bool add_bos) const override {
    return Encode(text, add_bos);
  }
  std::string TokenBytes(int32_t id) const override;
  std::optional<int32_t> SpecialTokenId(std::string_view text) const override;
  std::optional<int32_t> BosId() const override { return kBos; }
};

// The tokenizer shipped in a checkpoint directory: tokenizer.json (byte-level
// BPE) if present, else tokenizer.model (SentencePiece); nullptr when the
// directory has neither. InvalidArgument naming the file and what in it is
// not supported.
Result<std::unique_ptr<Tokenizer>> LoadCheckpointTokenizer(const std::string& dir);

}  // namespace kvstore::engine
