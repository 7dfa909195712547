#include "kvstore/engine/tokenizer.h"

#include <filesystem>

#include "kvstore/engine/bpe_tokenizer.h"
#include "kvstore/engine/sentencepiece_tokenizer.h"

namespace kvstore::engine {

std::string Tokenizer::DecodeBytes(std::span<const int32_t> ids) const {
  std::string out;
  for (int32_t id : ids) out += TokenBytes(id);
  return out;
}

std::vector<int32_t> ByteTokenizer::Encode(std::string_view text, bool add_bos) {
  std::vector<int32_t> out;
  out.reserve(text.size() + 1);
  if (add_bos) out.push_back(kBos);
  for (unsigned char c : text) out.push_back(c);
  return out;
}

std::string ByteTokenizer::Decode(std::span<const int32_t> tokens) {
  std::string out;
  for (int32_t t : tokens)
    if (t >= 0 && t < 256) out.push_back(static_cast<char>(t));
  return out;
}

std::string ByteTokenizer::TokenBytes(int32_t id) const {
  if (id < 0 || id >= 256) return {};
  return std::string(1, static_cast<char>(id));
}

std::optional<int32_t> ByteTokenizer::SpecialTokenId(std::string_view text) const {
  if (text == "<s>" || text == "<|begin_of_text|>") return kBos;
  if (text == "</s>" || text == "<|end_of_text|>") return kEos;
  return std::nullopt;
}

Result<std::unique_ptr<Tokenizer>> LoadCheckpointTokenizer(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path json = fs::path(dir) / "tokenizer.json";
  const fs::path model = fs::path(dir) / "tokenizer.model";
  if (fs::exists(json)) {
    KVSTORE_ASSIGN_OR_RETURN(auto t, BpeTokenizer::Load(json.string()));
    return std::unique_ptr<Tokenizer>(std::move(t));
  }
  if (fs::exists(model)) {
    KVSTORE_ASSIGN_OR_RETURN(auto t, SentencePieceTokenizer::Load(model.string(), dir));
    return std::unique_ptr<Tokenizer>(std::move(t));
  }
  return std::unique_ptr<Tokenizer>();
}

}  // namespace kvstore::engine
