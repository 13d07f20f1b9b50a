#include "diffusion/text_transformer.h"

#include "core/error.h"

namespace duan::diffusion {

std::string TextTransformer::sd1_prefix(const Checkpoint& ck) {
    const std::string P = "cond_stage_model.transformer.";
    if (!ck.has(P + "text_model.embeddings.token_embedding.weight") &&
        ck.has(P + "embeddings.token_embedding.weight"))
        return P;
    return P + "text_model.";
}

TextTransformer::TextTransformer(const Checkpoint& ck, const std::string& P, Layout layout)
    : layout_(layout) {
    const bool oc = layout == Layout::OpenClip;
    const std::string te = oc ? "token_embedding.weight" : "embeddings.token_embedding.weight";
    const TensorView& t = ck.get(P + te);
    if (t.shape.size() != 2 || t.shape[0] < 1 || t.shape[0] > 49408 || t.shape[1] % 64 != 0)
        fail(t.source, ": '", t.name, "' must be [vocab <= 49408][width, a multiple of 64]");
    vocab_ = static_cast<int>(t.shape[0]);
    dim_ = static_cast<int>(t.shape[1]);
    tok_emb_ = ck.matrix(P + te, vocab_, dim_);
    pos_emb_ = ck.matrix(P + (oc ? "positional_embedding" : "embeddings.position_embedding.weight"),
                         kCtx, dim_);
    const std::string blocks = oc ? "transformer.resblocks." : "encoder.layers.";
    const std::string fc1 = oc ? "mlp.c_fc" : "mlp.fc1";
    const TensorView& f = ck.get(P + blocks + "0." + fc1 + ".weight");
    mlp_ = static_cast<int>(f.shape[0]);
    for (int i = 0; ck.has(P + blocks + std::to_string(i) + "." + fc1 + ".weight"); ++i) {
        const std::string L = P + blocks + std::to_string(i) + ".";
        Layer l;
        if (oc) {
            l.ln1 = ck.norm(L + "ln_1", dim_);
            l.ln2 = ck.norm(L + "ln_2", dim_);
            // Fused [3D][D] q,k,v: one Linear of 3D outputs (its names lack the ".weight" form).
            // In place from a quantized GGUF like the other matrices: an F32 copy of bigG's 32
            // fused matrices was 600 MiB of heap held through the whole run.
            l.qkv = ck.linear_weight(L + "attn.in_proj_weight", dim_, 3LL * dim_);
            l.qkv.b = ck.vec(L + "attn.in_proj_bias", 3LL * dim_);
            l.o = ck.linear(L + "attn.out_proj", dim_, dim_);
            l.fc1 = ck.linear(L + "mlp.c_fc", dim_, mlp_);
            l.fc2 = ck.linear(L + "mlp.c_proj", mlp_, dim_);
        } else {
            l.ln1 = ck.norm(L + "layer_norm1", dim_);
            l.ln2 = ck.norm(L + "layer_norm2", dim_);
            l.q = ck.linear(L + "self_attn.q_proj", dim_, dim_);
            l.k = ck.linear(L + "self_attn.k_proj", dim_, dim_);
            l.v = ck.linear(L + "self_attn.v_proj", dim_, dim_);
            l.o = ck.linear(L + "self_attn.out_proj", dim_, dim_);
            l.fc1 = ck.linear(L + "mlp.fc1", dim_, mlp_);
            l.fc2 = ck.linear(L + "mlp.fc2", mlp_, dim_);
        }
        layers_.push_back(std::move(l));
    }
    if (layers_.size() < 2)
        fail(ck.path(), ": text encoder '", P, "' has ", layers_.size(),
             " layers; the penultimate-layer output needs at least 2");
    if (oc) {
        final_ln_ = ck.norm(P + "ln_final", dim_);
        if (ck.has(P + "text_projection")) {
            const TensorView& pr = ck.get(P + "text_projection");
            if (pr.shape.size() != 2 || pr.shape[0] != dim_)
                fail(pr.source, ": '", pr.name, "' must be [", dim_, "][projection]");
            proj_dim_ = static_cast<int>(pr.shape[1]);
            proj_ = ck.to_f32(pr);
        }
    } else {
        final_ln_ = ck.norm(P + "final_layer_norm", dim_);
    }
}

void TextTransformer::run_layer(ThreadPool& pool, const Layer& l, std::vector<float>& x) const {
    const int64_t D = dim_, T = static_cast<int64_t>(x.size()) / D, chunks = T / kCtx;
    const int heads = dim_ / 64;
    std::vector<float> att(x.size());
    auto h = layer_norm(x.data(), T, D, l.ln1, 1e-5f);
    if (layout_ == Layout::OpenClip) {
        auto qkv = linear(pool, l.qkv, h.data(), T);  // [T][3D]: q | k | v
        for (int64_t c = 0; c < chunks; ++c) {
            const float* b = qkv.data() + c * kCtx * 3 * D;
            attention(pool, b, 3 * D, b + D, 3 * D, b + 2 * D, 3 * D, att.data() + c * kCtx * D,
                      kCtx, kCtx, heads, 64, /*causal=*/true);
        }
    } else {
        auto q = linear(pool, l.q, h.data(), T);
        auto k = linear(pool, l.k, h.data(), T);
        auto v = linear(pool, l.v, h.data(), T);
        for (int64_t c = 0; c < chunks; ++c) {
            const int64_t o = c * kCtx * D;
            attention(pool, q.data() + o, D, k.data() + o, D, v.data() + o, D, att.data() + o, kCtx,
                      kCtx, heads, 64, /*causal=*/true);
        }
    }
    auto a = linear(pool, l.o, att.data(), T);
    for (size_t i = 0; i < x.size(); ++i) x[i] += a[i];
    h = layer_norm(x.data(), T, D, l.ln2, 1e-5f);
    auto m = linear(pool, l.fc1, h.data(), T);  // [T][mlp]
    if (layout_ == Layout::OpenClip)
        for (auto& e : m) e = gelu_f16_table(e);
    else
        for (auto& e : m) e = quick_gelu_f16_table(e);
    auto m2 = linear(pool, l.fc2, m.data(), T);
    for (size_t i = 0; i < x.size(); ++i) x[i] += m2[i];
}

TextTransformer::Output TextTransformer::encode(ThreadPool& pool,
                                                const std::vector<int32_t>& tokens, bool final_ln,
                                                bool pooled, int clip_skip) const {
    if (tokens.empty() || tokens.size() % kCtx != 0)
        fail("text encoder: token count ", tokens.size(), " is not a multiple of 77");
    if (pooled && proj_.empty()) fail("text encoder: no text_projection for the pooled output");
    const size_t n = layers_.size();
    if (clip_skip < 1 || static_cast<size_t>(clip_skip) > n)
        fail("text encoder: clip_skip ", clip_skip, " is outside 1..", n, " (its layer count)");
    const int64_t T = static_cast<int64_t>(tokens.size()), D = dim_, chunks = T / kCtx;
    std::vector<float> x(static_cast<size_t>(T * D));
    for (int64_t t = 0; t < T; ++t) {
        const int32_t id = tokens[t];
        if (id < 0 || id >= 49408) fail("text encoder: token id ", id, " out of range");
        const float* te = tok_emb_.data + static_cast<int64_t>(id % vocab_) * D;
        const float* pe = pos_emb_.data + (t % kCtx) * D;
        for (int64_t d = 0; d < D; ++d) x[t * D + d] = te[d] + pe[d];
    }
    const size_t used = n + 1 - static_cast<size_t>(clip_skip);  // layers the hidden states see
    for (size_t i = 0; i < used; ++i) run_layer(pool, layers_[i], x);
    Output out;
    out.hidden = final_ln ? layer_norm(x.data(), T, D, final_ln_, 1e-5f) : x;
    if (!pooled) return out;
    // The layers after them only feed the pooled vector.
    for (size_t i = used; i < n; ++i) run_layer(pool, layers_[i], x);
    out.pooled.assign(static_cast<size_t>(chunks * proj_dim_), 0.0f);
    for (int64_t c = 0; c < chunks; ++c) {
        // EOS: the first position holding the largest id (49407), as OpenCLIP's argmax does.
        int64_t e = 0;
        for (int64_t t = 1; t < kCtx; ++t)
            if (tokens[c * kCtx + t] > tokens[c * kCtx + e]) e = t;
        const auto v = layer_norm(x.data() + (c * kCtx + e) * D, 1, D, final_ln_, 1e-5f);
        float* po = out.pooled.data() + c * proj_dim_;
        for (int64_t d = 0; d < D; ++d)
            for (int j = 0; j < proj_dim_; ++j) po[j] += v[d] * proj_[d * proj_dim_ + j];
    }
    return out;
}

}  // namespace duan::diffusion
