#include "kvstore/engine/chat_template.h"

namespace kvstore::engine {

std::string_view ChatTemplateName(ChatTemplate t) {
  switch (t) {
    case ChatTemplate::kAuto:
      return "auto";
    case ChatTemplate::kLlama3:
      return "llama3";
    case ChatTemplate::kChatMl:
      return "chatml";
    case ChatTemplate::kPlain:
      return "plain";
  }
  return "?";
}

Result<ChatTemplate> ParseChatTemplate(std::string_view name) {
  for (ChatTemplate t :
       {ChatTemplate::kAuto, ChatTemplate::kLlama3, ChatTemplate::kChatMl, ChatTemplate::kPlain})
    if (name == ChatTemplateName(t)) return t;
  return Status::InvalidArgument("--chat-template \"" + std::string(name) +
                                 "\": expected auto, llama3, chatml or plain");
}

ChatTemplate ResolveChatTemplate(ChatTemplate t, const Tokenizer* tokenizer) {
  if (t != ChatTemplate::kAuto) return t;
  if (tokenizer != nullptr && tokenizer->SpecialTokenId("<|start_header_id|>"))
    return ChatTemplate::kLlama3;
  if (tokenizer != nullptr && tokenizer->SpecialTokenId("<|im_start|>"))
    return ChatTemplate::kChatMl;
  return ChatTemplate::kPlain;
}

RenderedChat RenderChat(ChatTemplate t, const std::vector<ChatMessage>& messages) {
  RenderedChat r;
  switch (t) {
    case ChatTemplate::kLlama3:
      r.text = "<|begin_of_text|>";
      for (const ChatMessage& m : messages)
        r.text +=
            "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + m.content + "<|eot_id|>";
      r.text += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      r.stop_tokens = {"<|eot_id|>"};
      break;
    case ChatTemplate::kChatMl:
      for (const ChatMessage& m : messages)
        r.text += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      r.text += "<|im_start|>assistant\n";
      r.stop_tokens = {"<|im_end|>"};
      break;
    case ChatTemplate::kAuto:
    case ChatTemplate::kPlain:
      r.add_bos = true;
      for (const ChatMessage& m : messages) r.text += m.role + ": " + m.content + "\n";
      r.text += "assistant:";
      break;
  }
  return r;
}

}  // namespace kvstore::engine
