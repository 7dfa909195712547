#include "kvstore/engine/model_config.h"

#include <nlohmann/json.hpp>

namespace kvstore::engine {

Status ModelConfig::Validate() const {
  auto bad = [](const char* what) {
    return Status::InvalidArgument(std::string("model config: ") + what);
  };
  if (vocab_size <= 0) return bad("vocab_size must be positive");
  if (hidden_size <= 0) return bad("hidden_size must be positive");
  if (intermediate_size <= 0) return bad("intermediate_size must be positive");
  if (num_layers <= 0) return bad("num_hidden_layers must be positive");
  if (num_heads <= 0 || num_kv_heads <= 0) return bad("head counts must be positive");
  if (num_heads % num_kv_heads != 0)
    return bad("num_attention_heads must be a multiple of num_key_value_heads");
  if (head_dim <= 0 || head_dim % 2 != 0) return bad("head_dim must be positive and even");
  if (rms_norm_eps <= 0) return bad("rms_norm_eps must be positive");
  if (rope_theta <= 0) return bad("rope_theta must be positive");
  if (max_position_embeddings <= 0) return bad("max_position_embeddings must be positive");
  if (eos_token_ids.empty()) return bad("eos_token_id must name at least one token");
  if (rope_scaling != kernels::RopeScaling::kNone && !(rope_factor > 0))
    return bad("rope_scaling.factor must be positive");
  if (rope_scaling == kernels::RopeScaling::kLlama3 &&
      (!(rope_low_freq_factor > 0) || !(rope_high_freq_factor > rope_low_freq_factor) ||
       rope_original_max_position <= 0))
    return bad(
        "rope_scaling (llama3) needs 0 < low_freq_factor < high_freq_factor and a positive "
        "original_max_position_embeddings");
  return Status::Ok();
}

ModelConfig TinyConfig() { return ModelConfig{}; }

kernels::RopeParams RopeParamsOf(const ModelConfig& c) {
  kernels::RopeParams p;
  p.theta = c.rope_theta;
  p.scaling = c.rope_scaling;
  p.factor = c.rope_factor;
  p.low_freq_factor = c.rope_low_freq_factor;
  p.high_freq_factor = c.rope_high_freq_factor;
  p.original_max_position = static_cast<float>(c.rope_original_max_position);
  return p;
}

Result<ModelConfig> ParseHfConfig(std::string_view json_text) {
  nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return Status::InvalidArgument("config.json: not a JSON object");
  ModelConfig c;
  try {
    auto required_int = [&](const char* key, int* out) -> Status {
      if (!j.contains(key) || !j[key].is_number_integer())
        return Status::InvalidArgument(std::string("config.json: missing integer \"") + key + "\"");
      *out = j[key].get<int>();
      return Status::Ok();
    };
    KVSTORE_RETURN_IF_ERROR(required_int("vocab_size", &c.vocab_size));
    KVSTORE_RETURN_IF_ERROR(required_int("hidden_size", &c.hidden_size));
    KVSTORE_RETURN_IF_ERROR(required_int("intermediate_size", &c.intermediate_size));
    KVSTORE_RETURN_IF_ERROR(required_int("num_hidden_layers", &c.num_layers));
    KVSTORE_RETURN_IF_ERROR(required_int("num_attention_heads", &c.num_heads));
    c.num_kv_heads = j.value("num_key_value_heads", c.num_heads);
    c.head_dim = j.contains("head_dim") && j["head_dim"].is_number_integer()
                     ? j["head_dim"].get<int>()
                     : (c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
    c.rms_norm_eps = j.value("rms_norm_eps", 1e-6f);
    c.rope_theta = j.value("rope_theta", 10000.0f);
    c.max_position_embeddings = j.value("max_position_embeddings", 2048);
    c.tie_word_embeddings = j.value("tie_word_embeddings", false);
    if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer())
      c.bos_token_id = j["bos_token_id"].get<int>();
    if (j.contains("eos_token_id") && !j["eos_token_id"].is_null()) {
      const auto& e = j["eos_token_id"];
      c.eos_token_ids.clear();
      if (e.is_number_integer()) {
        c.eos_token_ids.push_back(e.get<int>());
      } else if (e.is_array() && !e.empty()) {
        for (const auto& id : e) {
          if (!id.is_number_integer())
            return Status::InvalidArgument("config.json: eos_token_id list holds a non-integer");
          c.eos_token_ids.push_back(id.get<int>());
        }
      } else {
        return Status::InvalidArgument(
            "config.json: eos_token_id must be an integer or a non-empty list of integers");
      }
      c.eos_token_id = c.eos_token_ids.front();
    }
    auto refuse = [](const std::string& what) {
      return Status::InvalidArgument("config.json: " + what +
                                     " is not supported by this engine (it implements the Llama "
                                     "architecture: SiLU MLP, no biases, RoPE none/linear/llama3)");
    };
    const std::string act = j.value("hidden_act", std::string("silu"));
    if (act != "silu") return refuse("hidden_act \"" + act + "\"");
    for (const char* bias : {"attention_bias", "mlp_bias"})
      if (j.contains(bias) && j[bias].is_boolean() && j[bias].get<bool>())
        return refuse(std::string(bias) + " true");
    if (j.contains("quantization_config") && !j["quantization_config"].is_null())
      return refuse("quantization_config");
    const std::string type = j.value("model_type", std::string("llama"));
    if (type != "llama" && type != "mistral") return refuse("model_type \"" + type + "\"");
    if (j.contains("sliding_window") && j["sliding_window"].is_number_integer() &&
        j["sliding_window"].get<int>() < c.max_position_embeddings)
      return refuse("sliding_window " + std::to_string(j["sliding_window"].get<int>()));
    if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
      const auto& rs = j["rope_scaling"];
      if (!rs.is_object()) return refuse("rope_scaling that is not an object");
      std::string rt = rs.value("rope_type", rs.value("type", std::string()));
      auto number = [&](const char* key, float* out) -> Status {
        if (!rs.contains(key) || !rs[key].is_number())
          return Status::InvalidArgument("config.json: rope_scaling (" + rt +
                                         ") needs a number \"" + key + "\"");
        *out = rs[key].get<float>();
        return Status::Ok();
      };
      if (rt == "linear") {
        c.rope_scaling = kernels::RopeScaling::kLinear;
        KVSTORE_RETURN_IF_ERROR(number("factor", &c.rope_factor));
      } else if (rt == "llama3") {
        c.rope_scaling = kernels::RopeScaling::kLlama3;
        float original = 0;
        KVSTORE_RETURN_IF_ERROR(number("factor", &c.rope_factor));
        KVSTORE_RETURN_IF_ERROR(number("low_freq_factor", &c.rope_low_freq_factor));
        KVSTORE_RETURN_IF_ERROR(number("high_freq_factor", &c.rope_high_freq_factor));
        KVSTORE_RETURN_IF_ERROR(number("original_max_position_embeddings", &original));
        c.rope_original_max_position = static_cast<int>(original);
      } else if (rt != "default") {
        return refuse("rope_scaling type \"" + rt + "\"");
      }
    }
    if (j.contains("_name_or_path") && j["_name_or_path"].is_string())
      c.name = j["_name_or_path"].get<std::string>();
    else if (j.contains("model_type") && j["model_type"].is_string())
      c.name = j["model_type"].get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    return Status::InvalidArgument(std::string("config.json: ") + e.what());
  }
  KVSTORE_RETURN_IF_ERROR(c.Validate());
  return c;
}

std::string KvLayoutString(const ModelConfig& config, int block_size) {
  return "llama/f32/L" + std::to_string(config.num_layers) + "/kv" +
         std::to_string(config.num_kv_heads) + "/d" + std::to_string(config.head_dim) + "/b" +
         std::to_string(block_size) + "/v" + std::to_string(kKvLayoutVersion);
}

}  // namespace kvstore::engine
