#include "diffusion/unet.h"

#include <cmath>

#include "core/error.h"

namespace duan::diffusion {

namespace {
const std::string P = "model.diffusion_model.";
constexpr int kMult[4] = {1, 2, 4, 4};
constexpr int kHeads = 8, kCtxDim = 768;
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

UNet::Transformer UNet::load_attn(const Checkpoint& ck, const std::string& p, int ch) const {
    Transformer a;
    a.ch = ch;
    a.norm = ck.norm(p + ".norm", ch);
    a.proj_in = ck.conv(p + ".proj_in", ch, ch, 1);
    a.proj_out = ck.conv(p + ".proj_out", ch, ch, 1);
    const std::string t = p + ".transformer_blocks.0.";
    a.q1 = ck.linear(t + "attn1.to_q", ch, ch, false);
    a.k1 = ck.linear(t + "attn1.to_k", ch, ch, false);
    a.v1 = ck.linear(t + "attn1.to_v", ch, ch, false);
    a.o1 = ck.linear(t + "attn1.to_out.0", ch, ch);
    a.q2 = ck.linear(t + "attn2.to_q", ch, ch, false);
    a.k2 = ck.linear(t + "attn2.to_k", kCtxDim, ch, false);
    a.v2 = ck.linear(t + "attn2.to_v", kCtxDim, ch, false);
    a.o2 = ck.linear(t + "attn2.to_out.0", ch, ch);
    a.ff1 = ck.linear(t + "ff.net.0.proj", ch, ch * 8);
    a.ff2 = ck.linear(t + "ff.net.2", ch * 4, ch);
    a.ln1 = ck.norm(t + "norm1", ch);
    a.ln2 = ck.norm(t + "norm2", ch);
    a.ln3 = ck.norm(t + "norm3", ch);
    return a;
}

UNet::UNet(const Checkpoint& ck) {
    const auto& ci = ck.get(P + "input_blocks.0.0.weight");
    if (ci.shape.size() != 4 || ci.shape[1] != 4)
        fail(ck.path(), ": '", ci.name, "' is not a 4-channel SD1 UNet input conv");
    mc_ = static_cast<int>(ci.shape[0]);
    if (mc_ % 32 != 0) fail(ck.path(), ": UNet model_channels ", mc_, " is not a multiple of 32");
    emb_dim_ = 4 * mc_;
    time0_ = ck.linear(P + "time_embed.0", mc_, emb_dim_);
    time2_ = ck.linear(P + "time_embed.2", emb_dim_, emb_dim_);
    conv_in_ = ck.conv(P + "input_blocks.0.0", 4, mc_, 3);

    std::vector<int> chans = {mc_};
    int ch = mc_, idx = 0;
    for (int level = 0; level < 4; ++level) {
        for (int r = 0; r < 2; ++r) {
            ++idx;
            Block b;
            const std::string p = P + "input_blocks." + std::to_string(idx);
            b.has_res = true;
            b.res = load_res(ck, p + ".0", ch, kMult[level] * mc_);
            ch = kMult[level] * mc_;
            if (level < 3) {
                b.has_attn = true;
                b.attn = load_attn(ck, p + ".1", ch);
            }
            in_.push_back(std::move(b));
            chans.push_back(ch);
        }
        if (level != 3) {
            ++idx;
            Block b;
            b.down = true;
            b.conv = ck.conv(P + "input_blocks." + std::to_string(idx) + ".0.op", ch, ch, 3);
            in_.push_back(std::move(b));
            chans.push_back(ch);
        }
    }
    mid_res1_.res = load_res(ck, P + "middle_block.0", ch, ch);
    mid_attn_ = load_attn(ck, P + "middle_block.1", ch);
    mid_res2_.res = load_res(ck, P + "middle_block.2", ch, ch);
    idx = 0;
    for (int level = 3; level >= 0; --level) {
        for (int i = 0; i < 3; ++i) {
            const int ich = chans.back();
            chans.pop_back();
            Block b;
            const std::string p = P + "output_blocks." + std::to_string(idx);
            b.has_res = true;
            b.res = load_res(ck, p + ".0", ch + ich, mc_ * kMult[level]);
            ch = mc_ * kMult[level];
            int sub = 1;
            if (level < 3) {
                b.has_attn = true;
                b.attn = load_attn(ck, p + ".1", ch);
                sub = 2;
            }
            if (level > 0 && i == 2) {
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
    const int C = a.ch, dh = C / kHeads;
    const int64_t T = static_cast<int64_t>(H) * W;
    std::vector<float> h = x;
    group_norm(pool, h.data(), C, T, 32, kGnEps, a.norm, /*silu=*/false);
    h = conv2d(pool, a.proj_in, h.data(), H, W, 1, 0);
    std::vector<float> tok = transpose(h.data(), C, T);  // [T][C]
    std::vector<float> att(static_cast<size_t>(T * C));
    {  // self-attention
        auto n = layer_norm(tok.data(), T, C, a.ln1, kLnEps);
        auto q = linear(pool, a.q1, n.data(), T), k = linear(pool, a.k1, n.data(), T),
             v = linear(pool, a.v1, n.data(), T);
        attention(pool, q.data(), C, k.data(), C, v.data(), C, att.data(), T, T, kHeads, dh, false);
        add_into(tok, linear(pool, a.o1, att.data(), T));
    }
    {  // cross-attention over the text context [Lc][768]
        auto n = layer_norm(tok.data(), T, C, a.ln2, kLnEps);
        auto q = linear(pool, a.q2, n.data(), T);
        auto k = linear(pool, a.k2, ctx.data(), Lc), v = linear(pool, a.v2, ctx.data(), Lc);
        attention(pool, q.data(), C, k.data(), C, v.data(), C, att.data(), T, Lc, kHeads, dh,
                  false);
        add_into(tok, linear(pool, a.o2, att.data(), T));
    }
    {  // GEGLU feed-forward: [T][8C] -> x·gelu(gate) [T][4C] -> [T][C]
        auto n = layer_norm(tok.data(), T, C, a.ln3, kLnEps);
        auto g = linear(pool, a.ff1, n.data(), T);
        const int64_t I = 4 * C;
        std::vector<float> y(static_cast<size_t>(T * I));
        for (int64_t t = 0; t < T; ++t)
            for (int64_t i = 0; i < I; ++i)
                y[t * I + i] = g[t * 2 * I + i] * gelu_f16_table(g[t * 2 * I + I + i]);
        add_into(tok, linear(pool, a.ff2, y.data(), T));
    }
    h = transpose(tok.data(), T, C);  // [C][T]
    h = conv2d(pool, a.proj_out, h.data(), H, W, 1, 0);
    add_into(x, h);
}

std::vector<float> UNet::forward(ThreadPool& pool, const std::vector<float>& xin, int H, int W,
                                 float t, const std::vector<float>& ctx, int64_t Lc) const {
    if (H % 8 != 0 || W % 8 != 0) fail("UNet: latent size ", W, "x", H, " must be a multiple of 8");
    auto te = timestep_embedding(t, mc_);
    auto emb = linear(pool, time0_, te.data(), 1);
    silu_inplace(emb.data(), static_cast<int64_t>(emb.size()));
    emb = linear(pool, time2_, emb.data(), 1);

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
