#include "diffusion/clip_text.h"

#include "core/error.h"

namespace duan::diffusion {

ClipTextEncoder::ClipTextEncoder(const Checkpoint& ck) {
    // Most SD1 files use transformers' CLIPTextModel names (".text_model."); early ones lack it.
    // SD 2.x (OpenCLIP ViT-H, cond_stage_model.model.*) and SDXL (conditioner.embedders.*): the
    // UNet and VAE load (sd_config.h) but their text encoders are not implemented yet.
    if (ck.has("cond_stage_model.model.token_embedding.weight"))
        fail(ck.path(),
             ": SD 2.x checkpoint (OpenCLIP ViT-H text encoder, "
             "cond_stage_model.model.*): its text encoder is not supported yet");
    if (ck.has("conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight"))
        fail(ck.path(),
             ": SDXL checkpoint (conditioner.embedders.*): its two text encoders are not "
             "supported yet");
    std::string P = "cond_stage_model.transformer.text_model.";
    if (!ck.has(P + "embeddings.token_embedding.weight") &&
        ck.has("cond_stage_model.transformer.embeddings.token_embedding.weight"))
        P = "cond_stage_model.transformer.";
    tok_emb_ = ck.matrix(P + "embeddings.token_embedding.weight", 49408, kDim);
    pos_emb_ = ck.matrix(P + "embeddings.position_embedding.weight", kCtx, kDim);
    for (int i = 0; i < kLayers; ++i) {
        const std::string L = P + "encoder.layers." + std::to_string(i) + ".";
        Layer l;
        l.ln1 = ck.norm(L + "layer_norm1", kDim);
        l.ln2 = ck.norm(L + "layer_norm2", kDim);
        l.q = ck.linear(L + "self_attn.q_proj", kDim, kDim);
        l.k = ck.linear(L + "self_attn.k_proj", kDim, kDim);
        l.v = ck.linear(L + "self_attn.v_proj", kDim, kDim);
        l.o = ck.linear(L + "self_attn.out_proj", kDim, kDim);
        l.fc1 = ck.linear(L + "mlp.fc1", kDim, kMlp);
        l.fc2 = ck.linear(L + "mlp.fc2", kMlp, kDim);
        layers_.push_back(std::move(l));
    }
    final_ln_ = ck.norm(P + "final_layer_norm", kDim);
}

std::vector<float> ClipTextEncoder::encode(ThreadPool& pool,
                                           const std::vector<int32_t>& tokens) const {
    if (tokens.empty() || tokens.size() % kCtx != 0)
        fail("CLIP text encoder: token count ", tokens.size(), " is not a multiple of 77");
    const int64_t T = static_cast<int64_t>(tokens.size());
    const int64_t chunks = T / kCtx;
    std::vector<float> x(static_cast<size_t>(T * kDim));
    for (int64_t t = 0; t < T; ++t) {
        const int32_t id = tokens[t];
        if (id < 0 || id >= 49408) fail("CLIP text encoder: token id ", id, " out of range");
        const float* te = tok_emb_.data + static_cast<int64_t>(id) * kDim;
        const float* pe = pos_emb_.data + (t % kCtx) * kDim;
        for (int d = 0; d < kDim; ++d) x[t * kDim + d] = te[d] + pe[d];
    }
    std::vector<float> att(static_cast<size_t>(T * kDim));
    for (const Layer& l : layers_) {
        // x += out_proj(attention(ln1(x)))   [T][768]
        auto h = layer_norm(x.data(), T, kDim, l.ln1, 1e-5f);
        auto q = linear(pool, l.q, h.data(), T);
        auto k = linear(pool, l.k, h.data(), T);
        auto v = linear(pool, l.v, h.data(), T);
        for (int64_t c = 0; c < chunks; ++c) {
            const int64_t o = c * kCtx * kDim;
            attention(pool, q.data() + o, kDim, k.data() + o, kDim, v.data() + o, kDim,
                      att.data() + o, kCtx, kCtx, kHeads, kDim / kHeads, /*causal=*/true);
        }
        auto a = linear(pool, l.o, att.data(), T);
        for (size_t i = 0; i < x.size(); ++i) x[i] += a[i];
        // x += fc2(quick_gelu(fc1(ln2(x))))   [T][3072] inside
        h = layer_norm(x.data(), T, kDim, l.ln2, 1e-5f);
        auto m = linear(pool, l.fc1, h.data(), T);
        for (auto& e : m) e = quick_gelu_f16_table(e);
        auto m2 = linear(pool, l.fc2, m.data(), T);
        for (size_t i = 0; i < x.size(); ++i) x[i] += m2[i];
    }
    return layer_norm(x.data(), T, kDim, final_ln_, 1e-5f);
}

}  // namespace duan::diffusion
