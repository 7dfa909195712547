// The Hugging Face checkpoint loader, through real files in a temp dir.
#include "kvstore/engine/weights_loader.h"

#include <gtest/gtest.h>

#include "status_matchers.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "kvstore/engine/model.h"

namespace kvstore::engine {
namespace {

namespace fs = std::filesystem;

ModelConfig Config() {
  ModelConfig c;
  c.name = "loader-test";
  c.vocab_size = 40;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.rope_theta = 50000.0f;
  return c;
}

class WeightsLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kvstore-loader-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir() const { return dir_.string(); }

  // Rewrites model.safetensors with the tensors of a saved checkpoint, edited.
  void Rewrite(const std::function<void(std::vector<TensorToWrite>&)>& edit,
               std::vector<std::vector<float>>* keep) {
    auto file = SafetensorsFile::Open((dir_ / "model.safetensors").string());
    ASSERT_OK(file);
    std::vector<TensorToWrite> t;
    keep->reserve((*file)->tensors().size() + 1);
    for (const auto& [name, info] : (*file)->tensors()) {
      keep->push_back(*(*file)->ReadFloat(name));
      t.push_back({name, info.shape, &keep->back()});
    }
    edit(t);
    ASSERT_OK(WriteSafetensors((dir_ / "model.safetensors").string(), t, DType::kF32));
  }

  fs::path dir_;
};

TEST_F(WeightsLoaderTest, F32RoundTripIsExactAndRunsTheSameModel) {
  const ModelConfig c = Config();
  const ModelWeights w = RandomWeights(c, 5);
  ASSERT_OK(SaveHfCheckpoint(dir(), c, w, DType::kF32));
  auto loaded = LoadHfCheckpoint(dir());
  ASSERT_OK(loaded);
  EXPECT_EQ(loaded->config.num_layers, 2);
  EXPECT_EQ(loaded->config.head_dim, 8);
  EXPECT_FLOAT_EQ(loaded->config.rope_theta, 50000.0f);
  EXPECT_EQ(loaded->weights.embed, w.embed);
  EXPECT_EQ(loaded->weights.layers[1].wk, w.layers[1].wk);
  EXPECT_EQ(loaded->weights.layers[0].w_down, w.layers[0].w_down);
  EXPECT_EQ(loaded->weights.lm_head, w.lm_head);

  ModelOptions o;
  o.backend = Backend::kCpu;
  o.kv_cache_blocks = 8;
  auto from_dir = Model::LoadHf(dir(), o);
  auto direct = Model::Create(c, w, o);
  ASSERT_OK(from_dir);
  ASSERT_OK(direct);
  const std::vector<int32_t> prompt = {1, 2, 3, 39, 0, 7};
  auto a = (*from_dir)->Prefill((*from_dir)->kv_cache().CreateSequence(), prompt);
  auto b = (*direct)->Prefill((*direct)->kv_cache().CreateSequence(), prompt);
  ASSERT_OK(a);
  ASSERT_OK(b);
  EXPECT_EQ(*a, *b);
}

TEST_F(WeightsLoaderTest, HalfPrecisionCheckpointsConvert) {
  const ModelConfig c = Config();
  const ModelWeights w = RandomWeights(c, 6);
  for (DType dt : {DType::kF16, DType::kBF16}) {
    ASSERT_OK(SaveHfCheckpoint(dir(), c, w, dt));
    auto loaded = LoadHfCheckpoint(dir());
    ASSERT_OK(loaded);
    const auto& got = loaded->weights.layers[0].wq;
    ASSERT_EQ(got.size(), w.layers[0].wq.size());
    for (size_t i = 0; i < got.size(); ++i) {
      const float x = w.layers[0].wq[i];
      const float expect =
          dt == DType::kF16 ? HalfToFloat(FloatToHalf(x)) : BFloat16ToFloat(FloatToBFloat16(x));
      ASSERT_EQ(got[i], expect) << DTypeName(dt) << " " << i;
      ASSERT_NEAR(got[i], x, std::abs(x) * (dt == DType::kF16 ? 1e-3 : 8e-3) + 1e-7);
    }
  }
}

TEST(HalfConversion, KnownValues) {
  EXPECT_EQ(FloatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(FloatToHalf(-2.0f), 0xc000);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(1e6f), 0x7c00);
  EXPECT_EQ(FloatToHalf(5.960464477539063e-08f), 0x0001);  // smallest subnormal
  EXPECT_EQ(HalfToFloat(0x0001), 5.960464477539063e-08f);
  EXPECT_EQ(HalfToFloat(0x3555), 0.333251953125f);
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7e00)));
  EXPECT_EQ(FloatToBFloat16(1.0f), 0x3f80);
  EXPECT_EQ(BFloat16ToFloat(0x4049), 3.140625f);
  for (uint32_t h = 0; h < 0x7c00; ++h)  // every finite positive half round-trips
    ASSERT_EQ(FloatToHalf(HalfToFloat(static_cast<uint16_t>(h))), h) << h;
}

TEST_F(WeightsLoaderTest, TiedEmbeddingsNeedNoLmHead) {
  ModelConfig c = Config();
  c.tie_word_embeddings = true;
  const ModelWeights w = RandomWeights(c, 7);
  ASSERT_OK(SaveHfCheckpoint(dir(), c, w, DType::kF32));
  auto f = SafetensorsFile::Open((dir_ / "model.safetensors").string());
  ASSERT_OK(f);
  EXPECT_EQ((*f)->tensors().count("lm_head.weight"), 0u);
  auto loaded = LoadHfCheckpoint(dir());
  ASSERT_OK(loaded);
  EXPECT_EQ(loaded->weights.lm_head, w.embed);
}

TEST_F(WeightsLoaderTest, MissingTensorIsNotFoundAndNamed) {
  ASSERT_OK(SaveHfCheckpoint(dir(), Config(), RandomWeights(Config(), 1), DType::kF32));
  std::vector<std::vector<float>> keep;
  Rewrite(
      [](std::vector<TensorToWrite>& t) {
        std::erase_if(t, [](const TensorToWrite& x) {
          return x.name == "model.layers.1.mlp.up_proj.weight";
        });
      },
      &keep);
  auto r = LoadHfCheckpoint(dir());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("model.layers.1.mlp.up_proj.weight"), std::string::npos)
      << r.status().message();
}

TEST_F(WeightsLoaderTest, WrongShapeIsInvalidArgumentWithBothShapes) {
  ASSERT_OK(SaveHfCheckpoint(dir(), Config(), RandomWeights(Config(), 1), DType::kF32));
  std::vector<std::vector<float>> keep;
  Rewrite(
      [](std::vector<TensorToWrite>& t) {
        for (auto& x : t)
          if (x.name == "model.layers.0.self_attn.k_proj.weight") x.shape = {32, 16};
      },
      &keep);
  auto r = LoadHfCheckpoint(dir());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("[32, 16]"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("[16, 32]"), std::string::npos) << r.status().message();
}

TEST_F(WeightsLoaderTest, UnsupportedDtypeIsInvalidArgument) {
  ASSERT_OK(SaveHfCheckpoint(dir(), Config(), RandomWeights(Config(), 1), DType::kF32));
  // The final norm moves to a second shard, as I32 (same byte size as F32).
  std::vector<std::vector<float>> keep;
  Rewrite(
      [](std::vector<TensorToWrite>& t) {
        std::erase_if(t, [](const TensorToWrite& x) { return x.name == "model.norm.weight"; });
      },
      &keep);
  fs::path shard = dir_ / "model-extra.safetensors";
  {
    std::string header =
        R"({"model.norm.weight":{"dtype":"I32","shape":[32],"data_offsets":[0,128]}})";
    std::ofstream out(shard, std::ios::binary);
    uint64_t n = header.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << header << std::string(128, '\0');
  }
  auto r = LoadHfCheckpoint(dir());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("I32"), std::string::npos) << r.status().message();
}

TEST_F(WeightsLoaderTest, TensorInTwoShardsIsInvalidArgument) {
  ASSERT_OK(SaveHfCheckpoint(dir(), Config(), RandomWeights(Config(), 1), DType::kF32));
  fs::copy_file(dir_ / "model.safetensors", dir_ / "model-copy.safetensors");
  auto r = LoadHfCheckpoint(dir());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(WeightsLoaderTest, MissingConfigOrDirectoryOrCorruptFile) {
  EXPECT_EQ(LoadHfCheckpoint(dir()).status().code(), StatusCode::kNotFound);  // no config.json
  EXPECT_EQ(LoadHfCheckpoint(dir() + "/nope").status().code(), StatusCode::kNotFound);
  ASSERT_OK(SaveHfCheckpoint(dir(), Config(), RandomWeights(Config(), 1), DType::kF32));
  {
    std::ofstream out(dir_ / "model.safetensors", std::ios::binary | std::ios::trunc);
    uint64_t n = 1000;
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << "{}";
  }
  EXPECT_EQ(LoadHfCheckpoint(dir()).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvstore::engine
