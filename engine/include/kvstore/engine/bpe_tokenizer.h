// BpeTokenizer: a Hugging Face tokenizer.json whose model is byte-level BPE
// (GPT-2 / Llama-3 style).
//
// Supported: "model": {"type": "BPE", "vocab", "merges" (as "a b" strings or
// ["a", "b"] pairs), byte_fallback false}; "added_tokens" (matched verbatim
// in the text before anything else, as HF does for special tokens); a
// "pre_tokenizer" that is ByteLevel, or a Sequence of Split (with a regex)
// and ByteLevel. The split regex is not executed: the Llama-3 / GPT-4
// pattern is approximated by a hand-written scanner (contractions 's 't 're
// 've 'm 'll 'd, runs of letters with one optional leading non-letter, 1-3
// digits, punctuation runs with an optional leading space, newlines,
// whitespace), which equals it on ASCII and on letters/digits of any script
// as far as the scanner's classification by UTF-8 lead bytes goes (any byte >= 0x80
// counts as a letter). "normalizer" must be null; the "post_processor"'s
// BOS is taken from TemplateProcessing or from added tokens named like BOS.
// Anything else (WordPiece, Unigram, a normalizer) is refused at load with
// the field named.
//
// Thread-safety: immutable after Load; Encode from any thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "kvstore/engine/tokenizer.h"

namespace kvstore::engine {

class BpeTokenizer final : public Tokenizer {
 public:
  static Result<std::unique_ptr<BpeTokenizer>> Load(const std::string& path);
  static Result<std::unique_ptr<BpeTokenizer>> FromJson(std::string_view json_text,
                                                        const std::string& where);

  std::string Name() const override { return "bpe (tokenizer.json)"; }
  int VocabSize() const override { return static_cast<int>(id_to_bytes_.size()); }
  Result<std::vector<int32_t>> EncodeText(std::string_view text, bool add_bos) const override;
  std::string TokenBytes(int32_t id) const override;
  std::optional<int32_t> SpecialTokenId(std::string_view text) const override;
  std::optional<int32_t> BosId() const override { return bos_; }

  // The pre-tokenizer's pieces of text (exposed for tests).
  static std::vector<std::string> PreTokenize(std::string_view text);

 private:
  void EncodePiece(std::string_view piece, std::vector<int32_t>* out) const;

  std::unordered_map<std::string, int32_t> vocab_;      // byte-level-mapped string -> id
  std::vector<std::string> id_to_bytes_;                // id -> raw bytes ("" for specials)
  std::unordered_map<std::string, int> merge_rank_;     // "a b" -> rank
  std::vector<std::pair<std::string, int32_t>> added_;  // longest first
  std::unordered_map<std::string, int32_t> special_;
  std::optional<int32_t> bos_;
  bool ignore_merges_ = false;  // a piece in the vocabulary is one token (Llama-3)
};

}  // namespace kvstore::engine
