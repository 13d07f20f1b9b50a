// Hyper-parameters of a decoder-only transformer, read from GGUF metadata ("<arch>.*" keys).
#pragma once
#include <cstdint>
#include <string>

#include "format/gguf.h"

namespace duan {

// RoPE pairs dimensions (2i, 2i+1) ("normal", LLaMA as converted to GGUF) or (i, i + n_rot/2)
// ("neox", Qwen).
enum class RopeMode { Normal, Neox };

struct HParams {
    std::string arch;       // general.architecture
    int64_t n_vocab = 0;    // rows of token_embd
    int64_t n_ctx_train = 0;
    int64_t n_embd = 0;
    int64_t n_layer = 0;
    int64_t n_head = 0;
    int64_t n_head_kv = 0;
    int64_t head_dim = 0;   // attention.key_length, default n_embd / n_head
    int64_t n_ff = 0;
    int64_t n_rot = 0;      // rope.dimension_count, default head_dim
    float rms_eps = 1e-5f;
    float rope_base = 10000.0f;
    float rope_freq_scale = 1.0f;  // 1 / rope.scaling.factor for linear scaling
    RopeMode rope_mode = RopeMode::Normal;

    int64_t q_dim() const { return n_head * head_dim; }
    int64_t kv_dim() const { return n_head_kv * head_dim; }
};

// Reads the keys common to the llama family; `where` names the file in errors.
HParams read_llama_family_hparams(const gguf::File& f);

}  // namespace duan
