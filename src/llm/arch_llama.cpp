// LLaMA (1/2/3, TinyLlama, stories*): GQA, untied output matrix (tied accepted), RoPE "normal"
// ordering (the GGUF converter permutes Q/K rows so adjacent pairs rotate together), optional
// rope_freqs (Llama 3.1 long-context factors).
#include "llm/model.h"

namespace duan {

static void load_llama(Model& m) {
    HParams& hp = ArchLoader::hparams(m);
    hp = read_llama_family_hparams(ArchLoader::file(m));
    hp.rope_mode = RopeMode::Normal;
    ArchLoader::llama_globals(m);
    auto& w = ArchLoader::weights(m);
    for (int il = 0; il < hp.n_layer; ++il) w.layers.push_back(ArchLoader::llama_layer(m, il));
}

extern const ArchLoader kArchLlama = {"llama", load_llama};

}  // namespace duan
