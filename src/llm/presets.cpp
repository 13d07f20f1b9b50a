#include "llm/presets.h"

#include <cctype>

namespace duan {

int64_t Preset::n_params() const {
    const int64_t per_layer = 2 * n_embd                                  // attn_norm, ffn_norm
                              + n_embd * q_dim() + 2 * n_embd * kv_dim()  // wq, wk, wv
                              + q_dim() * n_embd                          // wo
                              + 3 * n_embd * n_ff                         // gate, up, down
                              + (qkv_bias ? q_dim() + 2 * kv_dim() : 0) + (qk_norm ? 2 * head_dim : 0);
    return n_vocab * n_embd * (tied_output ? 1 : 2) + n_embd + n_layer * per_layer;
}

const std::vector<Preset>& presets() {
    // Shapes from each model's published config.json (hidden_size, num_hidden_layers,
    // num_attention_heads, num_key_value_heads, head_dim, intermediate_size, vocab_size,
    // max_position_embeddings, tie_word_embeddings, rope_theta, rms_norm_eps).
    static const std::vector<Preset> kPresets = {
        {"qwen2.5-0.5b", "qwen2", "qwen2", 151936, 896, 24, 14, 2, 64, 4864, 32768, true, true,
         false, 1000000.0f, 1e-6f, "Qwen/Qwen2.5-0.5B-Instruct"},
        {"qwen2.5-1.5b", "qwen2", "qwen2", 151936, 1536, 28, 12, 2, 128, 8960, 32768, true, true,
         false, 1000000.0f, 1e-6f, "Qwen/Qwen2.5-1.5B-Instruct"},
        {"qwen2.5-3b", "qwen2", "qwen2", 151936, 2048, 36, 16, 2, 128, 11008, 32768, true, true,
         false, 1000000.0f, 1e-6f, "Qwen/Qwen2.5-3B-Instruct"},
        {"qwen2.5-7b", "qwen2", "qwen2", 152064, 3584, 28, 28, 4, 128, 18944, 32768, false, true,
         false, 1000000.0f, 1e-6f, "Qwen/Qwen2.5-7B-Instruct"},
        {"qwen3-0.6b", "qwen3", "qwen2", 151936, 1024, 28, 16, 8, 128, 3072, 40960, true, false,
         true, 1000000.0f, 1e-6f, "Qwen/Qwen3-0.6B"},
        {"qwen3-1.7b", "qwen3", "qwen2", 151936, 2048, 28, 16, 8, 128, 6144, 40960, true, false,
         true, 1000000.0f, 1e-6f, "Qwen/Qwen3-1.7B"},
        {"llama-3.2-1b", "llama", "llama-bpe", 128256, 2048, 16, 32, 8, 64, 8192, 131072, true,
         false, false, 500000.0f, 1e-5f,
         "meta-llama/Llama-3.2-1B (llama3 RoPE frequency factors not synthesized)"},
        {"tinyllama-1.1b", "llama", "llama-spm", 32000, 2048, 22, 32, 4, 64, 5632, 2048, false,
         false, false, 10000.0f, 1e-5f, "TinyLlama/TinyLlama-1.1B-Chat-v1.0"},
        {"llama-2-7b", "llama", "llama-spm", 32000, 4096, 32, 32, 32, 128, 11008, 4096, false,
         false, false, 10000.0f, 1e-5f, "meta-llama/Llama-2-7b-hf"},
        // The seed article's Qwen (v1) models. Qwen1 is the qwen2 computation (QKV bias, neox
        // RoPE, untied output, MHA); duan writes them as qwen2-architecture files of Qwen1's shape.
        {"qwen-1.8b", "qwen2", "qwen2", 151936, 2048, 24, 16, 16, 128, 5504, 8192, false, true,
         false, 10000.0f, 1e-6f, "Qwen/Qwen-1_8B (Qwen1, written as qwen2 arch)"},
        {"qwen-7b", "qwen2", "qwen2", 151936, 4096, 32, 32, 32, 128, 11008, 8192, false, true,
         false, 10000.0f, 1e-6f, "Qwen/Qwen-7B (Qwen1, written as qwen2 arch)"},
        {"qwen-72b", "qwen2", "qwen2", 152064, 8192, 80, 64, 64, 128, 24576, 32768, false, true,
         false, 1000000.0f, 1e-6f, "Qwen/Qwen-72B (Qwen1, written as qwen2 arch)"},
    };
    return kPresets;
}

const Preset* find_preset(const std::string& name) {
    auto lower = [](std::string s) {
        for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return s;
    };
    const std::string n = lower(name);
    for (const auto& p : presets())
        if (n == p.name) return &p;
    return nullptr;
}

}  // namespace duan
