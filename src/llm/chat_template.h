// Chat prompt formatting for the model families we run, without a Jinja interpreter: each known
// template is re-implemented in C++ and renders byte-for-byte what the model's own Jinja template
// (tokenizer.chat_template) renders for plain text messages.
//
// Names:
//   chatml   "<|im_start|>{role}\n{content}<|im_end|>\n" per message; prompt
//   "<|im_start|>assistant\n" qwen2    chatml + default system "You are a helpful assistant." when
//   the first message is not
//            a system message (Qwen2 / Qwen1.5 instruct)
//   qwen2.5  chatml + default system "You are Qwen, created by Alibaba Cloud. You are a helpful
//            assistant."; role "tool" becomes <tool_response> blocks in a user turn
//   qwen3    chatml; assistant turns before the last user query lose their <think>...</think>
//            part, the ones after it are rendered with a <think> block (as Qwen3's template does)
//   llama2   Llama-2-chat: "[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s>"
//            then "<s>[INST] {user} [/INST]" for later turns; contents are strip()ped
//   llama3   "<|start_header_id|>{role}<|end_header_id|>\n\n{content|trim}<|eot_id|>" per message;
//            prompt "<|start_header_id|>assistant<|end_header_id|>\n\n"
//
// BOS: the rendered text never starts with the BOS token text ("<s>", "<|begin_of_text|>") that
// the Llama templates put first; the tokenizer adds BOS itself (llama.cpp does the same). Encode
// the prompt with add_bos = tokenizer.add_bos() and parse_special = true, so the control-token
// texts inside ("<|im_start|>", "[INST]"'s later "<s>", "</s>", "<|eot_id|>") become their ids.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace duan {

struct ChatMessage {
    std::string role;  // "system", "user", "assistant" (qwen2.5/qwen3 also "tool")
    std::string content;
};

// Recognizes a template from its Jinja source (GGUF tokenizer.chat_template) with substring
// heuristics like llama.cpp's llm_chat_detect_template. A known template name is accepted as
// is. nullopt: not one of ours (e.g. phi3, mistral, gemma) — the caller should ask for
// --chat-template NAME.
std::optional<std::string> detect_chat_template(const std::string& jinja_source);

// Renders the conversation. add_generation_prompt appends the assistant header so the model
// answers next (llama2 has none: its prompt already ends with " [/INST]"). Throws duan::Error for
// an unknown name (listing the known ones) or a role the template cannot express.
std::string apply_chat_template(const std::string& name, const std::vector<ChatMessage>& msgs,
                                bool add_generation_prompt);

// The known template names, sorted.
std::vector<std::string> chat_template_names();

}  // namespace duan
