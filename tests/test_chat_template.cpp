// Chat templates: golden renderings (what the models' Jinja templates produce) and detection
// from excerpts of the real tokenizer.chat_template sources.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "llm/chat_template.h"
#include "testdata.h"

namespace duan {
namespace {

const std::vector<ChatMessage> kConv = {
    {"system", "You are a bot."},
    {"user", "Hi"},
    {"assistant", "Hello!"},
    {"user", "How are you?"},
};

TEST(ChatTemplate, Names) {
    EXPECT_EQ(chat_template_names(), (std::vector<std::string>{"chatml", "llama2", "llama3",
                                                               "qwen2", "qwen2.5", "qwen3"}));
}

TEST(ChatTemplate, ChatML) {
    const std::string body =
        "<|im_start|>system\nYou are a bot.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nHow are you?<|im_end|>\n";
    EXPECT_EQ(apply_chat_template("chatml", kConv, false), body);
    EXPECT_EQ(apply_chat_template("chatml", kConv, true), body + "<|im_start|>assistant\n");
    // With a system message the Qwen variants render exactly like plain ChatML.
    for (const char* name : {"qwen2", "qwen2.5", "qwen3"}) {
        EXPECT_EQ(apply_chat_template(name, kConv, false), body) << name;
        EXPECT_EQ(apply_chat_template(name, kConv, true), body + "<|im_start|>assistant\n") << name;
    }
    // Plain ChatML adds no system message.
    EXPECT_EQ(apply_chat_template("chatml", {{"user", "Hi"}}, true),
              "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, QwenDefaultSystemMessages) {
    const std::vector<ChatMessage> user = {{"user", "Hi"}};
    EXPECT_EQ(apply_chat_template("qwen2.5", user, true),
              "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
              "assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    EXPECT_EQ(apply_chat_template("qwen2", user, true),
              "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
              "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    EXPECT_EQ(apply_chat_template("qwen3", user, true),
              "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    // Qwen2.5 puts its default before the message loop, Qwen2 inside it.
    EXPECT_EQ(apply_chat_template("qwen2.5", {}, true),
              "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
              "assistant.<|im_end|>\n<|im_start|>assistant\n");
    EXPECT_EQ(apply_chat_template("qwen2", {}, true), "<|im_start|>assistant\n");
}

TEST(ChatTemplate, QwenToolResponses) {
    const std::vector<ChatMessage> msgs = {
        {"system", "S"}, {"user", "Q"}, {"tool", "r1"}, {"tool", "r2"}};
    EXPECT_EQ(apply_chat_template("qwen2.5", msgs, false),
              "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n"
              "<|im_start|>user\n<tool_response>\nr1\n</tool_response>\n<tool_response>\nr2\n"
              "</tool_response><|im_end|>\n");
}

TEST(ChatTemplate, Qwen3DropsPastThinking) {
    const std::vector<ChatMessage> msgs = {
        {"user", "1+1?"},
        {"assistant", "<think>\nadd them\n</think>\n\n2"},
        {"user", "2+2?"},
        {"assistant", "<think>\nagain\n</think>\n\n4"},
    };
    EXPECT_EQ(apply_chat_template("qwen3", msgs, false),
              "<|im_start|>user\n1+1?<|im_end|>\n"
              "<|im_start|>assistant\n2<|im_end|>\n"  // before the last query: answer only
              "<|im_start|>user\n2+2?<|im_end|>\n"
              "<|im_start|>assistant\n<think>\nagain\n</think>\n\n4<|im_end|>\n");
    // The last assistant turn after the query gets an (empty) think block even without one.
    EXPECT_EQ(apply_chat_template("qwen3", {{"user", "x"}, {"assistant", "y"}}, false),
              "<|im_start|>user\nx<|im_end|>\n"
              "<|im_start|>assistant\n<think>\n\n</think>\n\ny<|im_end|>\n");
}

TEST(ChatTemplate, Llama2) {
    const std::string want =
        "[INST] <<SYS>>\nYou are a bot.\n<</SYS>>\n\nHi [/INST] Hello! </s>"
        "<s>[INST] How are you? [/INST]";
    EXPECT_EQ(apply_chat_template("llama2", kConv, false), want);
    EXPECT_EQ(apply_chat_template("llama2", kConv, true), want);  // no generation prompt
    EXPECT_EQ(apply_chat_template("llama2", {{"user", "  Hi \n"}}, true), "[INST] Hi [/INST]");
    EXPECT_THROW(apply_chat_template("llama2", {{"user", "a"}, {"system", "b"}}, true), Error);
}

TEST(ChatTemplate, Llama3) {
    const std::string body =
        "<|start_header_id|>system<|end_header_id|>\n\nYou are a bot.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHow are you?<|eot_id|>";
    EXPECT_EQ(apply_chat_template("llama3", kConv, false), body);
    EXPECT_EQ(apply_chat_template("llama3", kConv, true),
              body + "<|start_header_id|>assistant<|end_header_id|>\n\n");
    EXPECT_EQ(apply_chat_template("llama3", {{"user", " padded \n"}}, false),
              "<|start_header_id|>user<|end_header_id|>\n\npadded<|eot_id|>");
}

TEST(ChatTemplate, UnknownNameListsKnownOnes) {
    try {
        apply_chat_template("vicuna", kConv, true);
        FAIL() << "no error";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("vicuna"), std::string::npos) << msg;
        EXPECT_NE(msg.find("chatml, llama2, llama3, qwen2, qwen2.5, qwen3"), std::string::npos)
            << msg;
    }
}

// Excerpts of the real templates, as stored in tokenizer.chat_template (Jinja source; "\\n" is
// the escape inside Jinja string literals, as in the models' tokenizer_config.json).
const char* kQwen25Jinja = R"J({%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
)J";

const char* kQwen2Jinja =
    R"J({% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %})J";

const char* kQwen3Jinja = R"J({%- for message in messages %}
    {%- elif message.role == "assistant" %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is string %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in content %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %})J";

const char* kChatMLJinja =
    R"J({% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %})J";

const char* kLlama2Jinja =
    R"J({% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %})J";

const char* kLlama3Jinja =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | "
    "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% "
    "endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

const char* kMistralV7Jinja =
    "{{- bos_token }}{%- for message in messages %}{%- if message['role'] == 'system' %}{{- "
    "'[SYSTEM_PROMPT]' + message['content'] + '[/SYSTEM_PROMPT]' }}{%- elif message['role'] == "
    "'user' %}{{- '[INST]' + message['content'] + '[/INST]' }}{%- endif %}{%- endfor %}";

TEST(ChatTemplate, DetectsRealTemplates) {
    EXPECT_EQ(detect_chat_template(kQwen25Jinja), "qwen2.5");
    EXPECT_EQ(detect_chat_template(kQwen2Jinja), "qwen2");
    EXPECT_EQ(detect_chat_template(kQwen3Jinja), "qwen3");
    EXPECT_EQ(detect_chat_template(kChatMLJinja), "chatml");
    EXPECT_EQ(detect_chat_template(kLlama2Jinja), "llama2");
    EXPECT_EQ(detect_chat_template(kLlama3Jinja), "llama3");
    EXPECT_EQ(detect_chat_template(kMistralV7Jinja), std::nullopt);
    EXPECT_EQ(detect_chat_template(""), std::nullopt);
    EXPECT_EQ(detect_chat_template("{{ messages }}"), std::nullopt);
    for (const auto& n : chat_template_names()) EXPECT_EQ(detect_chat_template(n), n);
}

// Reads a string-valued metadata key from a GGUF file by scanning for the key (enough for a test;
// the real reader lives in src/format).
std::string gguf_string_value(const std::string& path, const std::string& key) {
    std::ifstream f(path, std::ios::binary);
    std::string d((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const size_t at = d.find(key);
    if (at == std::string::npos || at + key.size() + 12 > d.size()) return "";
    const char* p = d.data() + at + key.size();
    uint32_t type;
    uint64_t len;
    std::memcpy(&type, p, 4);
    std::memcpy(&len, p + 4, 8);
    if (type != 8 || len > d.size() - (at + key.size() + 12)) return "";
    return std::string(p + 12, len);
}

TEST(ChatTemplate, Phi3FromGgufIsNotMistakenForOurs) {
    DUAN_REQUIRE_TESTDATA("vocab/ggml-vocab-phi-3.gguf");
    const std::string src =
        gguf_string_value(test::testdata("vocab/ggml-vocab-phi-3.gguf"), "tokenizer.chat_template");
    ASSERT_NE(src.find("<|assistant|>"), std::string::npos);
    EXPECT_EQ(detect_chat_template(src), std::nullopt);
}

}  // namespace
}  // namespace duan
