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
  return Status::Ok();
}

ModelConfig TinyConfig() { return ModelConfig{}; }

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
    if (j.contains("eos_token_id") && j["eos_token_id"].is_number_integer())
      c.eos_token_id = j["eos_token_id"].get<int>();
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
