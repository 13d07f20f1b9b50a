// Qwen2 / Qwen2.5: the llama block plus biases on Q, K and V; tied output for the small sizes
// (output.weight absent → token_embd); RoPE "neox" ordering (pairs i and i + n_rot/2).
#include "llm/model.h"

namespace duan {

static void load_qwen2(Model& m) {
    HParams& hp = ArchLoader::hparams(m);
    hp = read_llama_family_hparams(ArchLoader::file(m));
    hp.rope_mode = RopeMode::Neox;
    ArchLoader::llama_globals(m);
    auto& w = ArchLoader::weights(m);
    for (int il = 0; il < hp.n_layer; ++il) {
        LayerWeights l = ArchLoader::llama_layer(m, il);
        const std::string p = "blk." + std::to_string(il) + ".";
        l.bq = ArchLoader::vector(m, p + "attn_q.bias", hp.q_dim());
        l.bk = ArchLoader::vector(m, p + "attn_k.bias", hp.kv_dim());
        l.bv = ArchLoader::vector(m, p + "attn_v.bias", hp.kv_dim());
        w.layers.push_back(l);
    }
}

extern const ArchLoader kArchQwen2 = {"qwen2", load_qwen2};

}  // namespace duan
