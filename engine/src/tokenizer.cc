#include "kvstore/engine/tokenizer.h"

namespace kvstore::engine {

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

}  // namespace kvstore::engine
