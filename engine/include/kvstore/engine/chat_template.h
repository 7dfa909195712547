// Chat templates: how /v1/chat/completions turns "messages" into a prompt.
//
// The Jinja chat_template that a checkpoint's tokenizer_config.json may carry
// is NOT executed (no Jinja engine is available to a C++ build here).
// Instead the engine knows three fixed formats and picks one by the special
// tokens of the vocabulary (--chat-template auto), or as told:
//   llama3  "<|begin_of_text|>" then per message
//           "<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>",
//           then "<|start_header_id|>assistant<|end_header_id|>\n\n";
//           generation also stops at <|eot_id|>. Chosen when the vocabulary
//           has <|start_header_id|> (Llama-3 / 3.1 / 3.2 instruct).
//   chatml  per message "<|im_start|>{role}\n{content}<|im_end|>\n", then
//           "<|im_start|>assistant\n"; stops at <|im_end|>. Chosen when the
//           vocabulary has <|im_start|>.
//   plain   BOS, then per message "{role}: {content}\n", then "assistant:".
//           Otherwise (the built-in byte model, SentencePiece Llama-2 files).
// Message content: a string, or an array of {"type":"text","text":...} parts
// (joined); roles: system, user, assistant (developer is taken as system).
// Tool calls, images and names are refused with a 400.
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kvstore/engine/tokenizer.h"
#include "kvstore/status.h"

namespace kvstore::engine {

enum class ChatTemplate : uint8_t { kAuto, kLlama3, kChatMl, kPlain };
std::string_view ChatTemplateName(ChatTemplate t);
Result<ChatTemplate> ParseChatTemplate(std::string_view name);
// kAuto resolved by the vocabulary (plain without a tokenizer).
ChatTemplate ResolveChatTemplate(ChatTemplate t, const Tokenizer* tokenizer);

struct ChatMessage {
  std::string role;
  std::string content;
};

// The prompt text, and whether the tokenizer should add its BOS to it.
struct RenderedChat {
  std::string text;
  bool add_bos = false;
  std::vector<std::string> stop_tokens;  // special tokens that end the assistant turn
};
RenderedChat RenderChat(ChatTemplate t, const std::vector<ChatMessage>& messages);

}  // namespace kvstore::engine
