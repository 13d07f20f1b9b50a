// Shapes of real model architectures, so duan can synthesize a random-weight GGUF of the exact
// size (duan synth) and plan memory and speed for a model without downloading it (duan plan).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace duan {

struct Preset {
    const char* name;      // "qwen2.5-0.5b"
    const char* arch;      // GGUF general.architecture duan writes: llama | qwen2 | qwen3
    const char* family;    // tokenizer family: "qwen2" (byte-level BPE), "llama-spm", "llama-bpe"
    int64_t n_vocab;
    int64_t n_embd;
    int64_t n_layer;
    int64_t n_head;
    int64_t n_head_kv;
    int64_t head_dim;
    int64_t n_ff;
    int64_t n_ctx_train;
    bool tied_output;
    bool qkv_bias;
    bool qk_norm;
    float rope_base;
    float rms_eps;
    const char* note;      // where the shape comes from / what differs from the original

    int64_t q_dim() const { return n_head * head_dim; }
    int64_t kv_dim() const { return n_head_kv * head_dim; }
    // Parameter count of every tensor the GGUF holds (embeddings, output unless tied, norms,
    // biases, per-head norms).
    int64_t n_params() const;
};

const std::vector<Preset>& presets();
// nullptr if unknown (names compare case-insensitively).
const Preset* find_preset(const std::string& name);

}  // namespace duan
