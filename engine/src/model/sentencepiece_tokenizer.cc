#include "kvstore/engine/sentencepiece_tokenizer.h"

#ifdef KVSTORE_HAVE_SENTENCEPIECE
#include <sentencepiece_processor.h>
#endif

namespace kvstore::engine {

#ifdef KVSTORE_HAVE_SENTENCEPIECE

SentencePieceTokenizer::SentencePieceTokenizer()
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {}
SentencePieceTokenizer::~SentencePieceTokenizer() = default;

Result<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::Load(
    const std::string& path, const std::string& /*dir*/) {
  std::unique_ptr<SentencePieceTokenizer> t(new SentencePieceTokenizer());
  const auto st = t->sp_->Load(path);
  if (!st.ok())
    return Status::InvalidArgument("tokenizer " + path +
                                   ": SentencePiece cannot load it: " + st.ToString());
  const int n = t->sp_->GetPieceSize();
  t->bytes_.resize(n);
  t->control_.resize(n);
  for (int id = 0; id < n; ++id) {
    if (t->sp_->IsControl(id) || t->sp_->IsUnknown(id)) {
      t->control_[id] = true;
      continue;
    }
    const std::string piece = t->sp_->IdToPiece(id);
    if (t->sp_->IsByte(id) && piece.size() == 6) {  // "<0xNN>"
      t->bytes_[id] = std::string(1, static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
      continue;
    }
    std::string text;
    for (size_t i = 0; i < piece.size();) {
      if (piece.compare(i, 3, "\xE2\x96\x81") == 0) {  // U+2581 LOWER ONE EIGHTH BLOCK
        text += ' ';
        i += 3;
      } else {
        text += piece[i++];
      }
    }
    t->bytes_[id] = std::move(text);
  }
  if (t->sp_->bos_id() >= 0) t->bos_ = t->sp_->bos_id();
  return t;
}

Result<std::vector<int32_t>> SentencePieceTokenizer::EncodeText(std::string_view text,
                                                                bool add_bos) const {
  std::vector<int> ids;
  const auto st = sp_->Encode(std::string(text), &ids);
  if (!st.ok()) return Status::InvalidArgument("SentencePiece: " + st.ToString());
  std::vector<int32_t> out;
  if (add_bos && bos_) out.push_back(*bos_);
  out.insert(out.end(), ids.begin(), ids.end());
  return out;
}

std::string SentencePieceTokenizer::TokenBytes(int32_t id) const {
  if (id < 0 || id >= static_cast<int32_t>(bytes_.size())) return {};
  return bytes_[id];
}

std::optional<int32_t> SentencePieceTokenizer::SpecialTokenId(std::string_view text) const {
  const int id = sp_->PieceToId(std::string(text));
  if (id < 0 || id >= static_cast<int>(control_.size()) || !control_[id] || sp_->IsUnknown(id))
    return std::nullopt;
  return id;
}

#else  // no SentencePiece in this build

SentencePieceTokenizer::SentencePieceTokenizer() = default;
SentencePieceTokenizer::~SentencePieceTokenizer() = default;
Result<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::Load(
    const std::string& path, const std::string&) {
  return Status::Unavailable("tokenizer " + path +
                             ": this build has no SentencePiece (install libsentencepiece-dev "
                             "and reconfigure); token-id prompts still work");
}
Result<std::vector<int32_t>> SentencePieceTokenizer::EncodeText(std::string_view, bool) const {
  return Status::Unavailable("no SentencePiece");
}
std::string SentencePieceTokenizer::TokenBytes(int32_t) const { return {}; }
std::optional<int32_t> SentencePieceTokenizer::SpecialTokenId(std::string_view) const {
  return std::nullopt;
}

#endif

}  // namespace kvstore::engine
