#include "diffusion/unet.h"

#include <cmath>

#include "core/error.h"

namespace duan::diffusion {

namespace {
const std::string P = "model.diffusion_model.";
constexpr float kGnEps = 1e-6f, kLnEps = 1e-5f;

void add_into(std::vector<float>& x, const std::vector<float>& y) {
    for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];
}
}  // namespace

std::vector<float> timestep_embedding(float t, int dim) {
    const int half = dim / 2;
    std::vector<float> e(static_cast<size_t>(dim), 0.0f);
    for (int j = 0; j < half; ++j) {
        const float f =
            std::exp(-std::log(10000.0f) * static_cast<float>(j) / static_cast<float>(half));
        const float a = t * f;
        e[j] = std::cos(a);
        e[j + half] = std::sin(a);
    }
    return e;
}

UNet::Res UNet::load_res(const Checkpoint& ck, const std::string& p, int in, int out) const {
    Res r;
    r.in = in;
    r.out = out;
    r.n1 = ck.norm(p + ".in_layers.0", in);
    r.c1 = ck.conv(p + ".in_layers.2", in, out, 3);
    r.emb = ck.linear(p + ".emb_layers.1", emb_dim_, out);
    r.n2 = ck.norm(p + ".out_layers.0", out);
    r.c2 = ck.conv(p + ".out_layers.3", out, out, 3);
    if (in != out) r.skip = ck.conv(p + ".skip_connection", in, out, 1);
    return r;
}

UNet::Transformer UNet::load_attn(const Checkpoint& ck, const std::string& p, int ch,
                                  int depth) const {
    Transformer a;
    a.ch = ch;
    a.heads = cfg_.heads(ch);
    if (a.heads < 1 || ch % a.heads != 0)
        fail(ck.path(), ": '", p, "' has ", ch, " channels, not a multiple of the head size ",
             cfg_.head_dim);
    a.norm = ck.norm(p + ".norm", ch);
    if (cfg_.linear_proj) {
        a.lin_in = ck.linear(p + ".proj_in", ch, ch);
        a.lin_out = ck.linear(p + ".proj_out", ch, ch);
    } else {
        a.proj_in = ck.conv(p + ".proj_in", ch, ch, 1);
        a.proj_out = ck.conv(p + ".proj_out", ch, ch, 1);
    }
    const int64_t cd = cfg_.context_dim;
    for (int d = 0; d < depth; ++d) {
        const std::string t = p + ".transformer_blocks." + std::to_string(d) + ".";
        TBlock b;
        b.q1 = ck.linear(t + "attn1.to_q", ch, ch, false);
        b.k1 = ck.linear(t + "attn1.to_k", ch, ch, false);
        b.v1 = ck.linear(t + "attn1.to_v", ch, ch, false);
        b.o1 = ck.linear(t + "attn1.to_out.0", ch, ch);
        b.q2 = ck.linear(t + "attn2.to_q", ch, ch, false);
        b.k2 = ck.linear(t + "attn2.to_k", cd, ch, false);
        b.v2 = ck.linear(t + "attn2.to_v", cd, ch, false);
        b.o2 = ck.linear(t + "attn2.to_out.0", ch, ch);
        b.ff1 = ck.linear(t + "ff.net.0.proj", ch, ch * 8);
        b.ff2 = ck.linear(t + "ff.net.2", ch * 4, ch);
        b.ln1 = ck.norm(t + "norm1", ch);
        b.ln2 = ck.norm(t + "norm2", ch);
        b.ln3 = ck.norm(t + "norm3", ch);
        a.blocks.push_back(std::move(b));
    }
    return a;
}

UNet::UNet(const Checkpoint& ck) : cfg_(unet_config_from(ck)) {
    mc_ = cfg_.model_channels;
    emb_dim_ = 4 * mc_;
    time0_ = ck.linear(P + "time_embed.0", mc_, emb_dim_);
    time2_ = ck.linear(P + "time_embed.2", emb_dim_, emb_dim_);
    if (cfg_.adm_in) {
        label0_ = ck.linear(P + "label_emb.0.0", cfg_.adm_in, emb_dim_);
        label2_ = ck.linear(P + "label_emb.0.2", emb_dim_, emb_dim_);
    }
    conv_in_ = ck.conv(P + "input_blocks.0.0", 4, mc_, 3);

    const int levels = static_cast<int>(cfg_.mult.size());
    std::vector<int> chans = {mc_};
    int ch = mc_, idx = 0;
    for (int level = 0; level < levels; ++level) {
        for (int r = 0; r < cfg_.num_res_blocks; ++r) {
            ++idx;
            Block b;
            const std::string p = P + "input_blocks." + std::to_string(idx);
            b.has_res = true;
            b.res = load_res(ck, p + ".0", ch, cfg_.mult[level] * mc_);
            ch = cfg_.mult[level] * mc_;
            if (cfg_.depth[level] > 0) {
                b.has_attn = true;
                b.attn = load_attn(ck, p + ".1", ch, cfg_.depth[level]);
            }
            in_.push_back(std::move(b));
            chans.push_back(ch);
        }
        if (level != levels - 1) {
            ++idx;
            Block b;
            b.down = true;
            b.conv = ck.conv(P + "input_blocks." + std::to_string(idx) + ".0.op", ch, ch, 3);
            in_.push_back(std::move(b));
            chans.push_back(ch);
        }
    }
    mid_res1_.res = load_res(ck, P + "middle_block.0", ch, ch);
    mid_attn_ = load_attn(ck, P + "middle_block.1", ch, cfg_.mid_depth);
    mid_res2_.res = load_res(ck, P + "middle_block.2", ch, ch);
    idx = 0;
    for (int level = levels - 1; level >= 0; --level) {
        for (int i = 0; i <= cfg_.num_res_blocks; ++i) {
            const int ich = chans.back();
            chans.pop_back();
            Block b;
            const std::string p = P + "output_blocks." + std::to_string(idx);
            b.has_res = true;
            b.res = load_res(ck, p + ".0", ch + ich, mc_ * cfg_.mult[level]);
            ch = mc_ * cfg_.mult[level];
            int sub = 1;
            if (cfg_.depth[level] > 0) {
                b.has_attn = true;
                b.attn = load_attn(ck, p + ".1", ch, cfg_.depth[level]);
                sub = 2;
            }
            if (level > 0 && i == cfg_.num_res_blocks) {
                b.up = true;
                b.conv = ck.conv(p + "." + std::to_string(sub) + ".conv", ch, ch, 3);
            }
            out_.push_back(std::move(b));
            ++idx;
        }
    }
    out_norm_ = ck.norm(P + "out.0", ch);
    conv_out_ = ck.conv(P + "out.2", mc_, 4, 3);
}

void UNet::run_res(ThreadPool& pool, const Res& r, std::vector<float>& x, int H, int W,
                   const std::vector<float>& emb) const {
    const int64_t HW = static_cast<int64_t>(H) * W;
    std::vector<float> h = x;  // [in][HW]
    group_norm(pool, h.data(), r.in, HW, 32, kGnEps, r.n1, /*silu=*/true);
    h = conv2d(pool, r.c1, h.data(), H, W, 1, 1);  // [out][HW]
    std::vector<float> e = emb;
    silu_inplace(e.data(), static_cast<int64_t>(e.size()));
    const std::vector<float> eo = linear(pool, r.emb, e.data(), 1);  // [out]
    for (int c = 0; c < r.out; ++c)
        for (int64_t i = 0; i < HW; ++i) h[c * HW + i] += eo[c];
    group_norm(pool, h.data(), r.out, HW, 32, kGnEps, r.n2, /*silu=*/true);
    h = conv2d(pool, r.c2, h.data(), H, W, 1, 1);
    if (r.in != r.out) x = conv2d(pool, r.skip, x.data(), H, W, 1, 0);
    add_into(h, x);
    x.swap(h);
}

void UNet::run_attn(ThreadPool& pool, const Transformer& a, std::vector<float>& x, int H, int W,
                    const std::vector<float>& ctx, int64_t Lc) const {
    const int C = a.ch, nh = a.heads, dh = C / nh;
    const int64_t T = static_cast<int64_t>(H) * W;
    std::vector<float> h = x;
    group_norm(pool, h.data(), C, T, 32, kGnEps, a.norm, /*silu=*/false);
    std::vector<float> tok;  // [T][C]
    if (cfg_.linear_proj) {
        tok = transpose(h.data(), C, T);
        tok = linear(pool, a.lin_in, tok.data(), T);
    } else {
        h = conv2d(pool, a.proj_in, h.data(), H, W, 1, 0);
        tok = transpose(h.data(), C, T);
    }
    std::vector<float> att(static_cast<size_t>(T * C));
    for (const TBlock& b : a.blocks) {
        {  // self-attention
            auto n = layer_norm(tok.data(), T, C, b.ln1, kLnEps);
            auto q = linear(pool, b.q1, n.data(), T), k = linear(pool, b.k1, n.data(), T),
                 v = linear(pool, b.v1, n.data(), T);
            attention(pool, q.data(), C, k.data(), C, v.data(), C, att.data(), T, T, nh, dh, false);
            add_into(tok, linear(pool, b.o1, att.data(), T));
        }
        {  // cross-attention over the text context [Lc][context_dim]
            auto n = layer_norm(tok.data(), T, C, b.ln2, kLnEps);
            auto q = linear(pool, b.q2, n.data(), T);
            auto k = linear(pool, b.k2, ctx.data(), Lc), v = linear(pool, b.v2, ctx.data(), Lc);
            attention(pool, q.data(), C, k.data(), C, v.data(), C, att.data(), T, Lc, nh, dh,
                      false);
            add_into(tok, linear(pool, b.o2, att.data(), T));
        }
        {  // GEGLU feed-forward: [T][8C] -> x·gelu(gate) [T][4C] -> [T][C]
            auto n = layer_norm(tok.data(), T, C, b.ln3, kLnEps);
            auto g = linear(pool, b.ff1, n.data(), T);
            const int64_t I = 4 * C;
            std::vector<float> y(static_cast<size_t>(T * I));
            for (int64_t t = 0; t < T; ++t)
                for (int64_t i = 0; i < I; ++i)
                    y[t * I + i] = g[t * 2 * I + i] * gelu_f16_table(g[t * 2 * I + I + i]);
            add_into(tok, linear(pool, b.ff2, y.data(), T));
        }
    }
    if (cfg_.linear_proj) {
        tok = linear(pool, a.lin_out, tok.data(), T);
        h = transpose(tok.data(), T, C);  // [C][T]
    } else {
        h = transpose(tok.data(), T, C);
        h = conv2d(pool, a.proj_out, h.data(), H, W, 1, 0);
    }
    add_into(x, h);
}

std::vector<float> UNet::forward(ThreadPool& pool, const std::vector<float>& xin, int H, int W,
                                 float t, const std::vector<float>& ctx, int64_t Lc,
                                 const std::vector<float>* y) const {
    const int down = 1 << (cfg_.mult.size() - 1);
    if (H % down != 0 || W % down != 0)
        fail("UNet: latent size ", W, "x", H, " must be a multiple of ", down);
    if (static_cast<int64_t>(ctx.size()) != Lc * cfg_.context_dim)
        fail("UNet: context has ", ctx.size(), " values, expected ", Lc, "x", cfg_.context_dim);
    auto te = timestep_embedding(t, mc_);
    auto emb = linear(pool, time0_, te.data(), 1);
    silu_inplace(emb.data(), static_cast<int64_t>(emb.size()));
    emb = linear(pool, time2_, emb.data(), 1);
    if (cfg_.adm_in) {  // SDXL: emb += label_emb(y)
        if (!y || static_cast<int>(y->size()) != cfg_.adm_in)
            fail("UNet: this ", sd_version_name(cfg_.version), " UNet needs a label vector of ",
                 cfg_.adm_in, " values (pooled text + time ids)");
        auto l = linear(pool, label0_, y->data(), 1);
        silu_inplace(l.data(), static_cast<int64_t>(l.size()));
        l = linear(pool, label2_, l.data(), 1);
        add_into(emb, l);
    }

    std::vector<float> x = conv2d(pool, conv_in_, xin.data(), H, W, 1, 1);
    std::vector<std::vector<float>> skips = {x};
    std::vector<std::pair<int, int>> sizes = {{H, W}};
    int h = H, w = W;
    for (const Block& b : in_) {
        if (b.down) {
            int oh, ow;
            x = conv2d(pool, b.conv, x.data(), h, w, 2, 1, &oh, &ow);
            h = oh, w = ow;
        } else {
            run_res(pool, b.res, x, h, w, emb);
            if (b.has_attn) run_attn(pool, b.attn, x, h, w, ctx, Lc);
        }
        skips.push_back(x);
        sizes.push_back({h, w});
    }
    run_res(pool, mid_res1_.res, x, h, w, emb);
    run_attn(pool, mid_attn_, x, h, w, ctx, Lc);
    run_res(pool, mid_res2_.res, x, h, w, emb);
    for (const Block& b : out_) {
        // concat [x; skip] on channels
        const std::vector<float>& s = skips.back();
        x.insert(x.end(), s.begin(), s.end());
        skips.pop_back();
        sizes.pop_back();
        run_res(pool, b.res, x, h, w, emb);
        if (b.has_attn) run_attn(pool, b.attn, x, h, w, ctx, Lc);
        if (b.up) {
            // nearest-neighbour ×2, then 3×3 conv
            const int C = b.res.out;
            std::vector<float> u(static_cast<size_t>(C) * 4 * h * w);
            for (int c = 0; c < C; ++c)
                for (int yy = 0; yy < 2 * h; ++yy)
                    for (int xx = 0; xx < 2 * w; ++xx)
                        u[(static_cast<int64_t>(c) * 2 * h + yy) * 2 * w + xx] =
                            x[(static_cast<int64_t>(c) * h + yy / 2) * w + xx / 2];
            h *= 2, w *= 2;
            x = conv2d(pool, b.conv, u.data(), h, w, 1, 1);
        }
    }
    group_norm(pool, x.data(), mc_, static_cast<int64_t>(h) * w, 32, kGnEps, out_norm_, true);
    return conv2d(pool, conv_out_, x.data(), h, w, 1, 1);
}

}  // namespace duan::diffusion
