// SentencePieceTokenizer: a checkpoint's tokenizer.model through the
// SentencePiece library (Debian libsentencepiece-dev), as Llama-1/2 and
// Mistral ship it. Encoding is the library's; a token's bytes are its piece
// with "▁" as a space, and byte-fallback pieces "<0xNN>" as the byte NN.
// Control and unknown pieces have no text. BOS is added when asked and the
// model has one. Added tokens of tokenizer_config.json are not read.
//
// Thread-safety: immutable after Load; Encode from any thread (the library's
// processor is const-safe for encoding).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kvstore/engine/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace kvstore::engine {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  // Unavailable when the build has no SentencePiece.
  static Result<std::unique_ptr<SentencePieceTokenizer>> Load(const std::string& path,
                                                              const std::string& dir);
  ~SentencePieceTokenizer() override;

  std::string Name() const override { return "sentencepiece (tokenizer.model)"; }
  int VocabSize() const override { return static_cast<int>(bytes_.size()); }
  Result<std::vector<int32_t>> EncodeText(std::string_view text, bool add_bos) const override;
  std::string TokenBytes(int32_t id) const override;
  std::optional<int32_t> SpecialTokenId(std::string_view text) const override;
  std::optional<int32_t> BosId() const override { return bos_; }

 private:
  SentencePieceTokenizer();
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::vector<std::string> bytes_;  // per id
  std::vector<bool> control_;       // per id
  std::optional<int32_t> bos_;
};

}  // namespace kvstore::engine
