#include "kvstore/engine/bpe_tokenizer.h"

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

namespace kvstore::engine {
namespace {

using nlohmann::json;

// GPT-2's bytes_to_unicode: every byte gets a printable code point.
struct ByteMap {
  std::string to_text[256];                   // byte -> UTF-8 of its code point
  std::unordered_map<std::string, int> back;  // UTF-8 of a code point -> byte
  ByteMap() {
    std::vector<int> bs, cs;
    for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
    for (int b = 0xA1; b <= 0xAC; ++b) bs.push_back(b);
    for (int b = 0xAE; b <= 0xFF; ++b) bs.push_back(b);
    cs = bs;
    int n = 0;
    for (int b = 0; b < 256; ++b)
      if (std::find(bs.begin(), bs.end(), b) == bs.end()) {
        bs.push_back(b);
        cs.push_back(256 + n++);
      }
    for (size_t i = 0; i < bs.size(); ++i) {
      const int cp = cs[i];
      std::string u;
      if (cp < 0x80) {
        u = std::string(1, static_cast<char>(cp));
      } else {
        u += static_cast<char>(0xC0 | (cp >> 6));
        u += static_cast<char>(0x80 | (cp & 0x3F));
      }
      to_text[bs[i]] = u;
      back[u] = bs[i];
    }
  }
};
const ByteMap& Bytes() {
  static const ByteMap m;
  return m;
}

size_t CharLen(unsigned char c) {
  return c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
}

// Character classes of the pre-tokenizer scanner (see the header).
bool IsLetter(unsigned char c) { return std::isalpha(c) || c >= 0x80; }
bool IsDigit(unsigned char c) { return c >= '0' && c <= '9'; }
bool IsSpace(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
bool IsNewline(unsigned char c) { return c == '\n' || c == '\r'; }
bool IsOther(unsigned char c) { return !IsSpace(c) && !IsLetter(c) && !IsDigit(c); }

Status Unsupported(const std::string& where, const std::string& what) {
  return Status::InvalidArgument("tokenizer " + where + ": " + what +
                                 " is not supported (this engine reads byte-level BPE "
                                 "tokenizer.json files of the Llama-3 / GPT-2 kind)");
}

// The pre-tokenizer a tokenizer.json asks for must be one this scanner stands for.
Status CheckPreTokenizer(const json& p, const std::string& where, bool* add_prefix_space) {
  if (p.is_null()) return Unsupported(where, "a null pre_tokenizer");
  const std::string type = p.value("type", "");
  if (type == "ByteLevel") {
    *add_prefix_space = p.value("add_prefix_space", false);
    return Status::Ok();
  }
  if (type == "Sequence" && p.contains("pretokenizers") && p["pretokenizers"].is_array()) {
    for (const json& q : p["pretokenizers"]) {
      const std::string t = q.value("type", "");
      if (t == "ByteLevel") {
        *add_prefix_space = q.value("add_prefix_space", false);
      } else if (t != "Split") {
        return Unsupported(where, "pre_tokenizer \"" + t + "\"");
      }
    }
    return Status::Ok();
  }
  return Unsupported(where, "pre_tokenizer \"" + type + "\"");
}

}  // namespace

std::vector<std::string> BpeTokenizer::PreTokenize(std::string_view s) {
  std::vector<std::string> out;
  const size_t n = s.size();
  auto at = [&](size_t i) -> unsigned char { return i < n ? static_cast<unsigned char>(s[i]) : 0; };
  auto letters_from = [&](size_t i) {
    while (i < n && IsLetter(at(i))) i += CharLen(at(i));
    return std::min(i, n);
  };
  size_t i = 0;
  while (i < n) {
    const unsigned char c = at(i);
    size_t j = i;
    // 1. 's 't 're 've 'm 'll 'd (any case)
    if (c == '\'') {
      auto lower = [&](size_t k) { return static_cast<char>(std::tolower(at(k))); };
      const char a = lower(i + 1), b = lower(i + 2);
      if ((b == 'e' && (a == 'r' || a == 'v')) || (a == 'l' && b == 'l'))
        j = i + 3;
      else if (a == 's' || a == 't' || a == 'm' || a == 'd')
        j = i + 2;
    }
    // 2. [^\r\n\p{L}\p{N}]?\p{L}+
    if (j == i && IsLetter(c)) j = letters_from(i);
    if (j == i && !IsNewline(c) && !IsDigit(c) && !IsLetter(c) && i + 1 < n) {
      const size_t next = i + CharLen(c);
      if (IsLetter(at(next))) j = letters_from(next);
    }
    // 3. \p{N}{1,3}
    if (j == i && IsDigit(c)) {
      while (j < n && j - i < 3 && IsDigit(at(j))) ++j;
    }
    // 4. ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    if (j == i) {
      size_t k = i;
      if (c == ' ' && IsOther(at(i + 1)) && i + 1 < n) k = i + 1;
      if (k < n && IsOther(at(k))) {
        while (k < n && IsOther(at(k))) k += CharLen(at(k));
        while (k < n && IsNewline(at(k))) ++k;
        j = std::min(k, n);
      }
    }
    if (j == i && IsSpace(c)) {
      size_t end = i;
      while (end < n && IsSpace(at(end))) ++end;
      size_t last_nl = std::string::npos;
      for (size_t k = i; k < end; ++k)
        if (IsNewline(at(k))) last_nl = k;
      if (last_nl != std::string::npos) {
        j = last_nl + 1;  // 5. \s*[\r\n]+
      } else if (end == n) {
        j = end;  // 6. \s+(?!\S) at the end
      } else if (end - i > 1) {
        j = end - 1;  // 6. leaves the last space to the next word
      } else {
        j = end;  // 7. \s+
      }
    }
    if (j == i) j = std::min(n, i + CharLen(c));
    out.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

Result<std::unique_ptr<BpeTokenizer>> BpeTokenizer::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("tokenizer: cannot read " + path);
  std::stringstream text;
  text << in.rdbuf();
  return FromJson(text.str(), path);
}

Result<std::unique_ptr<BpeTokenizer>> BpeTokenizer::FromJson(std::string_view json_text,
                                                             const std::string& where) {
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return Status::InvalidArgument("tokenizer " + where + ": not a JSON object");
  std::unique_ptr<BpeTokenizer> t(new BpeTokenizer());
  try {
    const json& model = j["model"];
    if (!model.is_object() || model.value("type", "") != "BPE")
      return Unsupported(
          where, "model type \"" + (model.is_object() ? model.value("type", "?") : "?") + "\"");
    if (model.value("byte_fallback", false))
      return Unsupported(where, "model.byte_fallback true (SentencePiece-style BPE)");
    if (j.contains("normalizer") && !j["normalizer"].is_null())
      return Unsupported(where, "normalizer \"" + j["normalizer"].value("type", "?") + "\"");
    bool add_prefix_space = false;
    KVSTORE_RETURN_IF_ERROR(
        CheckPreTokenizer(j.value("pre_tokenizer", json()), where, &add_prefix_space));
    if (add_prefix_space) return Unsupported(where, "pre_tokenizer add_prefix_space true");
    t->ignore_merges_ = model.value("ignore_merges", false);
    int32_t max_id = -1;
    for (const auto& [tok, id] : model.at("vocab").items()) {
      t->vocab_[tok] = id.get<int32_t>();
      max_id = std::max(max_id, id.get<int32_t>());
    }
    const json& added = j.value("added_tokens", json::array());
    for (const json& a : added) max_id = std::max(max_id, a.at("id").get<int32_t>());
    t->id_to_bytes_.assign(max_id + 1, "");
    const ByteMap& bm = Bytes();
    for (const auto& [tok, id] : t->vocab_) {
      std::string raw;
      for (size_t i = 0; i < tok.size();) {
        const size_t len = CharLen(static_cast<unsigned char>(tok[i]));
        auto it = bm.back.find(tok.substr(i, len));
        if (it == bm.back.end())
          return Unsupported(where, "vocab entry \"" + tok + "\" (not byte-level)");
        raw += static_cast<char>(it->second);
        i += len;
      }
      t->id_to_bytes_[id] = std::move(raw);
    }
    int rank = 0;
    for (const json& m : model.at("merges")) {
      std::string key;
      if (m.is_string())
        key = m.get<std::string>();
      else
        key = m.at(0).get<std::string>() + " " + m.at(1).get<std::string>();
      t->merge_rank_.emplace(std::move(key), rank++);
    }
    for (const json& a : added) {
      const std::string content = a.at("content").get<std::string>();
      const int32_t id = a.at("id").get<int32_t>();
      t->added_.emplace_back(content, id);
      if (a.value("special", false)) {
        t->special_[content] = id;
        t->id_to_bytes_[id].clear();
      } else {
        t->id_to_bytes_[id] = content;
      }
    }
    std::sort(t->added_.begin(), t->added_.end(),
              [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
    // BOS: what the post-processor puts first, else a special token named like BOS.
    std::function<void(const json&)> find_bos = [&](const json& p) {
      if (!p.is_object() || t->bos_) return;
      if (p.value("type", "") == "TemplateProcessing" && p.contains("single") &&
          !p["single"].empty() && p["single"][0].contains("SpecialToken")) {
        const std::string name = p["single"][0]["SpecialToken"].value("id", "");
        if (auto it = t->special_.find(name); it != t->special_.end()) t->bos_ = it->second;
      }
      if (p.contains("processors"))
        for (const json& q : p["processors"]) find_bos(q);
    };
    find_bos(j.value("post_processor", json()));
    if (!t->bos_)
      for (const char* name : {"<|begin_of_text|>", "<s>", "<|startoftext|>"})
        if (auto it = t->special_.find(name); it != t->special_.end() && !t->bos_)
          t->bos_ = it->second;
  } catch (const json::exception& e) {
    return Status::InvalidArgument("tokenizer " + where + ": malformed: " + e.what());
  }
  return t;
}

void BpeTokenizer::EncodePiece(std::string_view piece, std::vector<int32_t>* out) const {
  const ByteMap& bm = Bytes();
  std::string mapped;
  std::vector<std::string> symbols;
  for (unsigned char c : piece) {
    symbols.push_back(bm.to_text[c]);
    mapped += bm.to_text[c];
  }
  if (ignore_merges_) {
    if (auto it = vocab_.find(mapped); it != vocab_.end()) {
      out->push_back(it->second);
      return;
    }
  }
  while (symbols.size() > 1) {
    int best = std::numeric_limits<int>::max();
    size_t at = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      auto it = merge_rank_.find(symbols[i] + " " + symbols[i + 1]);
      if (it != merge_rank_.end() && it->second < best) {
        best = it->second;
        at = i;
      }
    }
    if (best == std::numeric_limits<int>::max()) break;
    symbols[at] += symbols[at + 1];
    symbols.erase(symbols.begin() + at + 1);
  }
  for (const std::string& s : symbols) {
    auto it = vocab_.find(s);
    if (it != vocab_.end()) {
      out->push_back(it->second);
      continue;
    }
    // A symbol the vocabulary lacks: spell it byte by byte.
    for (size_t i = 0; i < s.size();) {
      const size_t len = CharLen(static_cast<unsigned char>(s[i]));
      if (auto b = vocab_.find(s.substr(i, len)); b != vocab_.end()) out->push_back(b->second);
      i += len;
    }
  }
}

Result<std::vector<int32_t>> BpeTokenizer::EncodeText(std::string_view text, bool add_bos) const {
  std::vector<int32_t> out;
  if (add_bos && bos_) out.push_back(*bos_);
  size_t start = 0;
  auto plain = [&](std::string_view segment) {
    for (const std::string& piece : PreTokenize(segment)) EncodePiece(piece, &out);
  };
  for (size_t i = 0; i < text.size();) {
    bool matched = false;
    for (const auto& [content, id] : added_) {
      if (!content.empty() && text.compare(i, content.size(), content) == 0) {
        plain(text.substr(start, i - start));
        out.push_back(id);
        i += content.size();
        start = i;
        matched = true;
        break;
      }
    }
    if (!matched) ++i;
  }
  plain(text.substr(start));
  return out;
}

std::string BpeTokenizer::TokenBytes(int32_t id) const {
  if (id < 0 || id >= static_cast<int32_t>(id_to_bytes_.size())) return {};
  return id_to_bytes_[id];
}

std::optional<int32_t> BpeTokenizer::SpecialTokenId(std::string_view text) const {
  auto it = special_.find(std::string(text));
  if (it == special_.end()) return std::nullopt;
  return it->second;
}

}  // namespace kvstore::engine
