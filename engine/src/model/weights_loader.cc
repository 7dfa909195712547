#include "kvstore/engine/weights_loader.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace kvstore::engine {
namespace {

namespace fs = std::filesystem;

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// All tensors of a checkpoint directory, by name.
class Checkpoint {
 public:
  Status Open(const std::string& dir) {
    std::vector<fs::path> paths;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.path().extension() == ".safetensors") paths.push_back(e.path());
    if (ec) return Status::NotFound("checkpoint: cannot list " + dir + ": " + ec.message());
    if (paths.empty()) return Status::NotFound("checkpoint: no *.safetensors in " + dir);
    std::sort(paths.begin(), paths.end());
    for (const auto& p : paths) {
      KVSTORE_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(p.string()));
      for (const auto& [name, info] : file->tensors()) {
        auto [it, inserted] = where_.emplace(name, file.get());
        if (!inserted)
          return Status::InvalidArgument("checkpoint: tensor " + name + " is in both " +
                                         it->second->path() + " and " + p.string());
      }
      files_.push_back(std::move(file));
    }
    return Status::Ok();
  }

  bool Has(const std::string& name) const { return where_.count(name) != 0; }
  std::vector<std::string> Names() const {
    std::vector<std::string> n;
    for (const auto& [name, file] : where_) n.push_back(name);
    return n;
  }

  Status Read(const std::string& name, std::vector<int64_t> shape, std::vector<float>* out) const {
    auto it = where_.find(name);
    if (it == where_.end()) return Status::NotFound("checkpoint: missing tensor " + name);
    const auto& info = it->second->tensors().at(name);
    if (info.shape != shape)
      return Status::InvalidArgument("checkpoint: tensor " + name + " has shape " +
                                     ShapeString(info.shape) + ", expected " + ShapeString(shape));
    KVSTORE_ASSIGN_OR_RETURN(*out, it->second->ReadFloat(name));
    return Status::Ok();
  }

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> where_;
};

constexpr const char* kLayerTensors[] = {
    "input_layernorm.weight",  "self_attn.q_proj.weight", "self_attn.k_proj.weight",
    "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
    "mlp.gate_proj.weight",    "mlp.up_proj.weight",      "mlp.down_proj.weight"};

std::string LayerName(int i, const char* rest) {
  return "model.layers." + std::to_string(i) + "." + rest;
}

}  // namespace

Result<LoadedModel> LoadHfCheckpoint(const std::string& dir) {
  if (!fs::is_directory(dir)) return Status::NotFound("checkpoint: no directory " + dir);
  std::ifstream cfg(fs::path(dir) / "config.json");
  if (!cfg) return Status::NotFound("checkpoint: no config.json in " + dir);
  std::stringstream text;
  text << cfg.rdbuf();
  LoadedModel m;
  KVSTORE_ASSIGN_OR_RETURN(m.config, ParseHfConfig(text.str()));
  const ModelConfig& c = m.config;
  Checkpoint ck;
  KVSTORE_RETURN_IF_ERROR(ck.Open(dir));
  const int64_t h = c.hidden_size, q = int64_t(c.num_heads) * c.head_dim,
                kv = int64_t(c.num_kv_heads) * c.head_dim, f = c.intermediate_size,
                v = c.vocab_size;
  ModelWeights& w = m.weights;
  KVSTORE_RETURN_IF_ERROR(ck.Read("model.embed_tokens.weight", {v, h}, &w.embed));
  w.layers.resize(c.num_layers);
  for (int i = 0; i < c.num_layers; ++i) {
    LayerWeights& l = w.layers[i];
    KVSTORE_RETURN_IF_ERROR(ck.Read(LayerName(i, "input_layernorm.weight"), {h}, &l.attn_norm));
    KVSTORE_RETURN_IF_ERROR(ck.Read(LayerName(i, "self_attn.q_proj.weight"), {q, h}, &l.wq));
    KVSTORE_RETURN_IF_ERROR(ck.Read(LayerName(i, "self_attn.k_proj.weight"), {kv, h}, &l.wk));
    KVSTORE_RETURN_IF_ERROR(ck.Read(LayerName(i, "self_attn.v_proj.weight"), {kv, h}, &l.wv));
    KVSTORE_RETURN_IF_ERROR(ck.Read(LayerName(i, "self_attn.o_proj.weight"), {h, q}, &l.wo));
    KVSTORE_RETURN_IF_ERROR(
        ck.Read(LayerName(i, "post_attention_layernorm.weight"), {h}, &l.mlp_norm));
    KVSTORE_RETURN_IF_ERROR(ck.Read(LayerName(i, "mlp.gate_proj.weight"), {f, h}, &l.w_gate));
    KVSTORE_RETURN_IF_ERROR(ck.Read(LayerName(i, "mlp.up_proj.weight"), {f, h}, &l.w_up));
    KVSTORE_RETURN_IF_ERROR(ck.Read(LayerName(i, "mlp.down_proj.weight"), {h, f}, &l.w_down));
  }
  KVSTORE_RETURN_IF_ERROR(ck.Read("model.norm.weight", {h}, &w.final_norm));
  if (c.tie_word_embeddings && !ck.Has("lm_head.weight")) {
    w.lm_head = w.embed;
  } else {
    KVSTORE_RETURN_IF_ERROR(ck.Read("lm_head.weight", {v, h}, &w.lm_head));
  }
  // A tensor the model does not use (a bias, a different architecture) means
  // the forward pass would compute something else: refuse, never skip.
  std::set<std::string> expected = {"model.embed_tokens.weight", "model.norm.weight",
                                    "lm_head.weight"};
  for (int i = 0; i < c.num_layers; ++i)
    for (const char* t : kLayerTensors) expected.insert(LayerName(i, t));
  for (const std::string& name : ck.Names()) {
    if (expected.count(name) != 0) continue;
    // Older checkpoints carry the RoPE buffer; it follows from the config.
    if (name.size() >= 19 && name.compare(name.size() - 19, 19, "rotary_emb.inv_freq") == 0)
      continue;
    return Status::InvalidArgument("checkpoint " + dir + ": tensor \"" + name +
                                   "\" is not part of the Llama model this engine implements "
                                   "(biases and other architectures are not supported)");
  }
  return m;
}

Status SaveHfCheckpoint(const std::string& dir, const ModelConfig& c, const ModelWeights& w,
                        DType dtype) {
  KVSTORE_RETURN_IF_ERROR(CheckWeightShapes(c, w));
  nlohmann::json j = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"_name_or_path", c.name},
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_hidden_layers", c.num_layers},
      {"num_attention_heads", c.num_heads},
      {"num_key_value_heads", c.num_kv_heads},
      {"head_dim", c.head_dim},
      {"rms_norm_eps", c.rms_norm_eps},
      {"rope_theta", c.rope_theta},
      {"max_position_embeddings", c.max_position_embeddings},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"bos_token_id", c.bos_token_id},
      {"eos_token_id", c.eos_token_ids.size() > 1 ? nlohmann::json(c.eos_token_ids)
                                                  : nlohmann::json(c.eos_token_id)},
      {"torch_dtype", dtype == DType::kF32   ? "float32"
                      : dtype == DType::kF16 ? "float16"
                                             : "bfloat16"},
  };
  if (c.rope_scaling == kernels::RopeScaling::kLinear) {
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.rope_factor}};
  } else if (c.rope_scaling == kernels::RopeScaling::kLlama3) {
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", c.rope_factor},
                         {"low_freq_factor", c.rope_low_freq_factor},
                         {"high_freq_factor", c.rope_high_freq_factor},
                         {"original_max_position_embeddings", c.rope_original_max_position}};
  }
  std::ofstream cfg(fs::path(dir) / "config.json", std::ios::trunc);
  if (!cfg) return Status::Internal("checkpoint: cannot write config.json in " + dir);
  cfg << j.dump(2) << "\n";
  if (!cfg) return Status::Internal("checkpoint: write failed for config.json in " + dir);

  const int64_t h = c.hidden_size, q = int64_t(c.num_heads) * c.head_dim,
                kv = int64_t(c.num_kv_heads) * c.head_dim, f = c.intermediate_size,
                v = c.vocab_size;
  std::vector<std::string> names;  // keeps the strings alive
  std::vector<TensorToWrite> t;
  t.push_back({"model.embed_tokens.weight", {v, h}, &w.embed});
  for (int i = 0; i < c.num_layers; ++i) {
    const LayerWeights& l = w.layers[i];
    t.push_back({LayerName(i, "input_layernorm.weight"), {h}, &l.attn_norm});
    t.push_back({LayerName(i, "self_attn.q_proj.weight"), {q, h}, &l.wq});
    t.push_back({LayerName(i, "self_attn.k_proj.weight"), {kv, h}, &l.wk});
    t.push_back({LayerName(i, "self_attn.v_proj.weight"), {kv, h}, &l.wv});
    t.push_back({LayerName(i, "self_attn.o_proj.weight"), {h, q}, &l.wo});
    t.push_back({LayerName(i, "post_attention_layernorm.weight"), {h}, &l.mlp_norm});
    t.push_back({LayerName(i, "mlp.gate_proj.weight"), {f, h}, &l.w_gate});
    t.push_back({LayerName(i, "mlp.up_proj.weight"), {f, h}, &l.w_up});
    t.push_back({LayerName(i, "mlp.down_proj.weight"), {h, f}, &l.w_down});
  }
  t.push_back({"model.norm.weight", {h}, &w.final_norm});
  if (!c.tie_word_embeddings) t.push_back({"lm_head.weight", {v, h}, &w.lm_head});
  return WriteSafetensors((fs::path(dir) / "model.safetensors").string(), t, dtype);
}

}  // namespace kvstore::engine
