#include "llm/chat_template.h"

#include <algorithm>
#include <string_view>

#include "core/error.h"

namespace duan {

namespace {

constexpr std::string_view kQwen2System = "You are a helpful assistant.";
constexpr std::string_view kQwen25System =
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

bool contains(std::string_view s, std::string_view what) {
    return s.find(what) != std::string_view::npos;
}

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// Python's str.strip() / Jinja's |trim for ASCII whitespace.
std::string strip(std::string_view s) {
    size_t b = 0, e = s.size();
    while (b < e && is_space(s[b])) ++b;
    while (e > b && is_space(s[e - 1])) --e;
    return std::string(s.substr(b, e - b));
}

std::string lstrip_newlines(std::string_view s) {
    size_t b = 0;
    while (b < s.size() && s[b] == '\n') ++b;
    return std::string(s.substr(b));
}

std::string rstrip_newlines(std::string_view s) {
    size_t e = s.size();
    while (e > 0 && s[e - 1] == '\n') --e;
    return std::string(s.substr(0, e));
}

void chatml_turn(std::string& out, std::string_view role, std::string_view content) {
    out.append("<|im_start|>").append(role).append("\n").append(content).append("<|im_end|>\n");
}

// ChatML with an optional default system message. Qwen2's template adds it inside the message
// loop (so an empty conversation gets none), Qwen2.5's before the loop.
std::string render_chatml(const std::vector<ChatMessage>& msgs, bool gen,
                          std::string_view default_system, bool system_even_if_empty) {
    std::string out;
    const bool has_system = !msgs.empty() && msgs[0].role == "system";
    if (!default_system.empty() && !has_system && (system_even_if_empty || !msgs.empty()))
        chatml_turn(out, "system", default_system);
    for (const auto& m : msgs) chatml_turn(out, m.role, m.content);
    if (gen) out.append("<|im_start|>assistant\n");
    return out;
}

// Qwen2.5/Qwen3: consecutive "tool" messages share one user turn of <tool_response> blocks.
void tool_turn(std::string& out, const std::vector<ChatMessage>& msgs, size_t i) {
    if (i == 0 || msgs[i - 1].role != "tool") out.append("<|im_start|>user");
    out.append("\n<tool_response>\n").append(msgs[i].content).append("\n</tool_response>");
    if (i + 1 == msgs.size() || msgs[i + 1].role != "tool") out.append("<|im_end|>\n");
}

std::string render_qwen25(const std::vector<ChatMessage>& msgs, bool gen) {
    std::string out;
    if (msgs.empty() || msgs[0].role != "system") chatml_turn(out, "system", kQwen25System);
    for (size_t i = 0; i < msgs.size(); ++i) {
        if (msgs[i].role == "tool") {
            tool_turn(out, msgs, i);
        } else {
            chatml_turn(out, msgs[i].role, msgs[i].content);
        }
    }
    if (gen) out.append("<|im_start|>assistant\n");
    return out;
}

bool starts_with(std::string_view s, std::string_view p) {
    return s.substr(0, p.size()) == p;
}
bool ends_with(std::string_view s, std::string_view p) {
    return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

std::string render_qwen3(const std::vector<ChatMessage>& msgs, bool gen) {
    // The last "real" user query: a user message that is not just a wrapped tool response.
    // Without one the index stays at the last message, so no assistant turn comes after it.
    size_t last_query = msgs.empty() ? 0 : msgs.size() - 1;
    for (size_t k = msgs.size(); k-- > 0;) {
        const auto& c = msgs[k].content;
        if (msgs[k].role == "user" &&
            !(starts_with(c, "<tool_response>") && ends_with(c, "</tool_response>"))) {
            last_query = k;
            break;
        }
    }
    std::string out;
    for (size_t i = 0; i < msgs.size(); ++i) {
        const auto& m = msgs[i];
        if (m.role == "assistant") {
            // Split "<think>reasoning</think>answer" the way the template does.
            std::string content = m.content, reasoning;
            if (const size_t end = content.find("</think>"); end != std::string::npos) {
                std::string before = rstrip_newlines(std::string_view(content).substr(0, end));
                if (const size_t open = before.rfind("<think>"); open != std::string::npos)
                    before = before.substr(open + 7);
                reasoning = lstrip_newlines(before);
                content = lstrip_newlines(content.substr(content.rfind("</think>") + 8));
            }
            out.append("<|im_start|>assistant\n");
            if (i > last_query && (i + 1 == msgs.size() || !reasoning.empty())) {
                out.append("<think>\n")
                    .append(lstrip_newlines(rstrip_newlines(reasoning)))
                    .append("\n</think>\n\n")
                    .append(lstrip_newlines(content));
            } else {
                out.append(content);
            }
            out.append("<|im_end|>\n");
        } else if (m.role == "tool") {
            tool_turn(out, msgs, i);
        } else {
            chatml_turn(out, m.role, m.content);
        }
    }
    if (gen) out.append("<|im_start|>assistant\n");
    return out;
}

// Llama-2-chat's template: an optional leading system message is folded into the first turn,
// every user turn is "<s>[INST] ... [/INST]" and every answer " ... </s>". The very first "<s>"
// is left to the tokenizer's BOS. The real template has no generation prompt.
std::string render_llama2(const std::vector<ChatMessage>& msgs) {
    size_t first = 0;
    std::string system;
    bool has_system = false;
    if (!msgs.empty() && msgs[0].role == "system") {
        system = msgs[0].content;
        has_system = true;
        first = 1;
    }
    std::string out;
    for (size_t i = first; i < msgs.size(); ++i) {
        const auto& m = msgs[i];
        std::string content = m.content;
        if (i == first && has_system) content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content;
        if (m.role == "user") {
            if (!out.empty()) out.append("<s>");
            out.append("[INST] ").append(strip(content)).append(" [/INST]");
        } else if (m.role == "assistant") {
            out.append(" ").append(strip(content)).append(" </s>");
        } else {
            fail("chat template llama2: message ", i, " has role '", m.role,
                 "'; this template takes one leading system message, then user and assistant");
        }
    }
    return out;
}

std::string render_llama3(const std::vector<ChatMessage>& msgs, bool gen) {
    std::string out;
    for (const auto& m : msgs) {
        out.append("<|start_header_id|>").append(m.role).append("<|end_header_id|>\n\n");
        out.append(strip(m.content)).append("<|eot_id|>");
    }
    if (gen) out.append("<|start_header_id|>assistant<|end_header_id|>\n\n");
    return out;
}

const std::vector<std::string>& names() {
    static const std::vector<std::string> n = {"chatml", "llama2",  "llama3",
                                               "qwen2",  "qwen2.5", "qwen3"};
    return n;
}

}  // namespace

std::vector<std::string> chat_template_names() {
    return names();
}

std::optional<std::string> detect_chat_template(const std::string& src) {
    const auto& known = names();
    if (std::find(known.begin(), known.end(), src) != known.end()) return src;

    if (contains(src, "<|im_start|>")) {
        // Phi-4 and SmolVLM use <|im_start|> too but are not ChatML.
        if (contains(src, "<|im_sep|>") || contains(src, "<end_of_utterance>")) return std::nullopt;
        if (contains(src, "reasoning_content") || contains(src, "enable_thinking")) return "qwen3";
        if (contains(src, "You are Qwen, created by Alibaba Cloud")) return "qwen2.5";
        if (contains(src, std::string(kQwen2System) + "<|im_end|>")) return "qwen2";
        return "chatml";
    }
    if (starts_with(src, "mistral") || contains(src, "[INST]")) {
        // Mistral's own [INST] formats (v1, v3, v7) differ from Llama-2's.
        if (contains(src, "[SYSTEM_PROMPT]") || contains(src, "[AVAILABLE_TOOLS]") ||
            contains(src, "' [INST] ' + system_message"))
            return std::nullopt;
        return "llama2";
    }
    if (contains(src, "<|start_header_id|>") && contains(src, "<|end_header_id|>")) return "llama3";
    return std::nullopt;
}

std::string apply_chat_template(const std::string& name, const std::vector<ChatMessage>& msgs,
                                bool add_generation_prompt) {
    const bool gen = add_generation_prompt;
    if (name == "chatml") return render_chatml(msgs, gen, {}, false);
    if (name == "qwen2") return render_chatml(msgs, gen, kQwen2System, false);
    if (name == "qwen2.5") return render_qwen25(msgs, gen);
    if (name == "qwen3") return render_qwen3(msgs, gen);
    if (name == "llama2") return render_llama2(msgs);
    if (name == "llama3") return render_llama3(msgs, gen);
    std::string list;
    for (const auto& n : names()) list += (list.empty() ? "" : ", ") + n;
    fail("unknown chat template '", name, "' (known: ", list, ")");
}

}  // namespace duan
