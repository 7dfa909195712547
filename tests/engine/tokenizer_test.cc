// Tokenizers on small files the test writes: a byte-level BPE tokenizer.json
// (Llama-3 style) and a SentencePiece tokenizer.model trained here with the
// library's trainer.
#include <gtest/gtest.h>

#include "status_matchers.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "kvstore/engine/bpe_tokenizer.h"
#include "kvstore/engine/tokenizer.h"

#ifdef KVSTORE_HAVE_SENTENCEPIECE
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#endif

namespace kvstore::engine {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// GPT-2's byte -> code point map, written out from its definition.
std::string ByteChar(int b) {
  auto printable = [](int x) {
    return (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF);
  };
  int cp = b;
  if (!printable(b)) {
    int n = 0;
    for (int x = 0; x < b; ++x) n += !printable(x);
    cp = 256 + n;
  }
  if (cp < 0x80) return std::string(1, char(cp));
  return std::string{char(0xC0 | (cp >> 6)), char(0x80 | (cp & 0x3F))};
}

json TestTokenizerJson() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[ByteChar(b)] = b;
  vocab["he"] = 261;
  vocab["ll"] = 262;
  vocab["hell"] = 263;
  vocab[ByteChar(' ') + "w"] = 264;
  vocab["hello"] = 265;  // reachable only through ignore_merges (no merge makes it)
  json added = json::array();
  int id = 256;
  for (const char* s : {"<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>",
                        "<|end_header_id|>"})
    added.push_back({{"id", id++}, {"content", s}, {"special", true}});
  json t = json::object();
  t["added_tokens"] = added;
  t["normalizer"] = nullptr;
  t["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  t["model"] = {{"type", "BPE"},
                {"vocab", vocab},
                {"merges", json::array({"h e", "l l", "he ll", ByteChar(' ') + " w"})}};
  return t;
}

TEST(BpeTokenizer, PreTokenizerFollowsTheLlama3Pattern) {
  EXPECT_EQ(BpeTokenizer::PreTokenize("Hello world's 12345 !!  x\n\ny"),
            (std::vector<std::string>{"Hello", " world", "'s", " ", "123", "45", " !!", " ", " x",
                                      "\n\n", "y"}));
  EXPECT_EQ(BpeTokenizer::PreTokenize("I'LL do it.\tOK  "),
            (std::vector<std::string>{"I", "'LL", " do", " it", ".", "\tOK", "  "}));
  EXPECT_EQ(BpeTokenizer::PreTokenize("caf\u00e9 \u4e2d\u6587!"),
            (std::vector<std::string>{"caf\u00e9", " \u4e2d\u6587", "!"}));
}

TEST(BpeTokenizer, MergesByRankSpecialTokensAndRoundTrips) {
  auto t = BpeTokenizer::FromJson(TestTokenizerJson().dump(), "test");
  ASSERT_OK(t);
  // "hello" -> h e l l o -> he l l o -> he ll o -> hell o; " world" -> Ġw o r l d.
  auto ids = (*t)->EncodeText("hello world", /*add_bos=*/true);
  ASSERT_OK(ids);
  EXPECT_EQ(*ids, (std::vector<int32_t>{256, 263, 'o', 264, 'o', 'r', 'l', 'd'}));
  // Special tokens written in the text become their ids and have no text.
  auto special = (*t)->EncodeText("a<|eot_id|>b", false);
  ASSERT_OK(special);
  EXPECT_EQ(*special, (std::vector<int32_t>{'a', 258, 'b'}));
  EXPECT_EQ((*t)->TokenBytes(258), "");
  EXPECT_EQ((*t)->SpecialTokenId("<|start_header_id|>"), 259);
  EXPECT_FALSE((*t)->SpecialTokenId("hello").has_value());
  EXPECT_EQ((*t)->BosId(), 256);  // named like BOS
  for (const std::string& text :
       std::vector<std::string>{"hello world", "  leading and trailing  ",
                                "na\u00efve caf\u00e9 \u4e2d\u6587 \U0001F600!",
                                "tabs\tand\nnewlines\r\n", std::string("\x01\x7f\xff bytes", 10)}) {
    auto e = (*t)->EncodeText(text, false);
    ASSERT_OK(e);
    EXPECT_EQ((*t)->DecodeBytes(*e), text);
  }
}

TEST(BpeTokenizer, IgnoreMergesTakesWholePiecesFromTheVocabulary) {
  json j = TestTokenizerJson();
  j["model"]["ignore_merges"] = true;
  auto t = BpeTokenizer::FromJson(j.dump(), "test");
  ASSERT_OK(t);
  EXPECT_EQ(*(*t)->EncodeText("hello", false), (std::vector<int32_t>{265}));
  j["model"]["ignore_merges"] = false;
  auto u = BpeTokenizer::FromJson(j.dump(), "test");
  EXPECT_EQ(*(*u)->EncodeText("hello", false), (std::vector<int32_t>{263, 'o'}));
}

TEST(BpeTokenizer, RefusesWhatItDoesNotImplementNamingIt) {
  struct Case {
    std::function<void(json&)> edit;
    const char* named;
  };
  for (const Case& c : {
           Case{[](json& j) { j["model"]["type"] = "WordPiece"; }, "WordPiece"},
           Case{[](json& j) { j["model"]["byte_fallback"] = true; }, "byte_fallback"},
           Case{[](json& j) {
                  j["normalizer"] = {{"type", "NFC"}};
                },
                "normalizer \"NFC\""},
           Case{[](json& j) {
                  j["pre_tokenizer"] = {{"type", "Whitespace"}};
                },
                "Whitespace"},
           Case{[](json& j) { j["pre_tokenizer"]["add_prefix_space"] = true; }, "add_prefix_space"},
           Case{[](json& j) { j["model"]["vocab"]["a b"] = 300; }, "not byte-level"},
       }) {
    json j = TestTokenizerJson();
    c.edit(j);
    auto t = BpeTokenizer::FromJson(j.dump(), "tok.json");
    ASSERT_FALSE(t.ok()) << c.named;
    EXPECT_NE(t.status().message().find(c.named), std::string::npos) << t.status().message();
    EXPECT_NE(t.status().message().find("tok.json"), std::string::npos);
  }
}

class TokenizerDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kvstore-tok-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(TokenizerDir, CheckpointWithoutTokenizerFilesHasNone) {
  auto t = LoadCheckpointTokenizer(dir_.string());
  ASSERT_OK(t);
  EXPECT_EQ(*t, nullptr);
  std::ofstream(dir_ / "tokenizer.json") << TestTokenizerJson().dump();
  auto u = LoadCheckpointTokenizer(dir_.string());
  ASSERT_OK(u);
  ASSERT_NE(*u, nullptr);
  EXPECT_EQ((*u)->Name(), "bpe (tokenizer.json)");
}

#ifdef KVSTORE_HAVE_SENTENCEPIECE
TEST_F(TokenizerDir, SentencePieceModelTrainedHereRoundTrips) {
  {
    std::ofstream corpus(dir_ / "corpus.txt");
    const char* lines[] = {"the quick brown fox jumps over the lazy dog",
                           "disaggregated prefill and decode share a key value cache store",
                           "a small model serves tokens one by one through the engine",
                           "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u4e2d\u6587"};
    for (int i = 0; i < 200; ++i) corpus << lines[i % 4] << " " << i << "\n";
  }
  const std::string args = "--input=" + (dir_ / "corpus.txt").string() +
                           " --model_prefix=" + (dir_ / "tokenizer").string() +
                           " --vocab_size=320 --model_type=bpe --byte_fallback=true"
                           " --character_coverage=1.0 --normalization_rule_name=identity"
                           " --remove_extra_whitespaces=false --minloglevel=2";
  ASSERT_OK(sentencepiece::SentencePieceTrainer::Train(args));
  ASSERT_TRUE(fs::exists(dir_ / "tokenizer.model"));
  auto t = LoadCheckpointTokenizer(dir_.string());
  ASSERT_OK(t);
  ASSERT_NE(*t, nullptr);
  EXPECT_EQ((*t)->Name(), "sentencepiece (tokenizer.model)");
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_OK(sp.Load((dir_ / "tokenizer.model").string()));
  for (const std::string& text :
       std::vector<std::string>{"the lazy fox", "prefill  and   decode",
                                "r\u00e9sum\u00e9 \u4e2d\u6587", "unseen \U0001F600 bytes"}) {
    auto ids = (*t)->EncodeText(text, /*add_bos=*/true);
    ASSERT_OK(ids);
    EXPECT_EQ(ids->front(), *(*t)->BosId());
    // Same ids as the library; our bytes-per-token decode equals the text
    // with SentencePiece's dummy-prefix space in front.
    std::vector<int> lib;
    ASSERT_OK(sp.Encode(text, &lib));
    EXPECT_EQ(std::vector<int32_t>(ids->begin() + 1, ids->end()),
              std::vector<int32_t>(lib.begin(), lib.end()));
    EXPECT_EQ((*t)->DecodeBytes(*ids), " " + text);
  }
  // Byte fallback: the emoji is not in the corpus, so it travels as 4 byte pieces.
  auto e = (*t)->EncodeText("\U0001F600", false);
  ASSERT_OK(e);
  std::string joined;
  for (int32_t id : *e) joined += (*t)->TokenBytes(id);
  EXPECT_EQ(joined, " \U0001F600");
  EXPECT_TRUE((*t)->SpecialTokenId("</s>").has_value());
}
#endif

}  // namespace
}  // namespace kvstore::engine
