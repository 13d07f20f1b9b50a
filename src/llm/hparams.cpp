#include "llm/hparams.h"

#include "core/error.h"

namespace duan {

HParams read_llama_family_hparams(const gguf::File& f) {
    const auto& m = f.meta();
    const std::string& where = f.path();
    HParams hp;
    hp.arch = m.require_string("general.architecture", where);
    const std::string a = hp.arch + ".";
    hp.n_embd = m.require_u32(a + "embedding_length", where);
    hp.n_layer = m.require_u32(a + "block_count", where);
    hp.n_head = m.require_u32(a + "attention.head_count", where);
    hp.n_ff = m.require_u32(a + "feed_forward_length", where);
    hp.n_ctx_train = m.get_u32(a + "context_length").value_or(2048);
    hp.n_head_kv = m.get_u32(a + "attention.head_count_kv").value_or(hp.n_head);
    if (hp.n_head <= 0 || hp.n_embd <= 0 || hp.n_layer <= 0)
        fail(where, ": ", a, "embedding_length/block_count/attention.head_count must be > 0");
    if (hp.n_head_kv <= 0 || hp.n_head % hp.n_head_kv != 0)
        fail(where, ": ", a, "attention.head_count_kv (", hp.n_head_kv,
             ") must divide attention.head_count (", hp.n_head, ")");
    hp.head_dim = m.get_u32(a + "attention.key_length").value_or(hp.n_embd / hp.n_head);
    if (auto vl = m.get_u32(a + "attention.value_length"); vl && *vl != hp.head_dim)
        fail(where, ": ", a, "attention.value_length (", *vl, ") != key_length (", hp.head_dim,
             "): not supported");
    if (hp.head_dim <= 0 || hp.head_dim % 2 != 0)
        fail(where, ": head dimension ", hp.head_dim, " must be even and > 0");
    hp.n_rot = m.get_u32(a + "rope.dimension_count").value_or(hp.head_dim);
    if (hp.n_rot <= 0 || hp.n_rot > hp.head_dim || hp.n_rot % 2 != 0)
        fail(where, ": ", a, "rope.dimension_count ", hp.n_rot, " must be even and <= head dim ",
             hp.head_dim);
    hp.rms_eps = m.get_f32(a + "attention.layer_norm_rms_epsilon").value_or(1e-5f);
    hp.rope_base = m.get_f32(a + "rope.freq_base").value_or(10000.0f);
    // Linear RoPE scaling: positions are multiplied by freq_scale = 1/factor. The factor comes from
    // rope.scaling.factor, or the older rope.scale_linear key.
    const std::string scaling = m.get_string(a + "rope.scaling.type").value_or("none");
    if (scaling != "none" && scaling != "linear")
        fail(where, ": ", a, "rope.scaling.type '", scaling,
             "' is not supported (supported: none, linear)");
    float factor = m.get_f32(a + "rope.scale_linear").value_or(0.0f);
    if (auto v = m.get_f32(a + "rope.scaling.factor")) factor = *v;
    if (scaling == "linear" || m.has(a + "rope.scale_linear"))
        hp.rope_freq_scale = factor > 0.0f ? 1.0f / factor : 1.0f;
    return hp;
}

}  // namespace duan
