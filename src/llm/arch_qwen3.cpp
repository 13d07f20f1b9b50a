// Qwen3: the qwen2 block without Q/K/V biases, plus a per-head RMSNorm on Q and K (weights
// [head_dim], applied before RoPE). head_dim comes from attention.key_length and need not equal
// n_embd / n_head (Qwen3-0.6B: 16 heads × 128 = 2048 ≠ n_embd 1024). RoPE "neox".
#include "llm/model.h"

namespace duan {

static void load_qwen3(Model& m) {
    HParams& hp = ArchLoader::hparams(m);
    hp = read_llama_family_hparams(ArchLoader::file(m));
    hp.rope_mode = RopeMode::Neox;
    ArchLoader::llama_globals(m);
    auto& w = ArchLoader::weights(m);
    for (int il = 0; il < hp.n_layer; ++il) {
        LayerWeights l = ArchLoader::llama_layer(m, il);
        const std::string p = "blk." + std::to_string(il) + ".";
        l.q_norm = ArchLoader::vector(m, p + "attn_q_norm.weight", hp.head_dim);
        l.k_norm = ArchLoader::vector(m, p + "attn_k_norm.weight", hp.head_dim);
        w.layers.push_back(l);
    }
}

extern const ArchLoader kArchQwen3 = {"qwen3", load_qwen3};

}  // namespace duan
