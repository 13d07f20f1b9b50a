#include "diffusion/vae.h"

#include <cmath>

#include "core/error.h"

namespace duan::diffusion {

namespace {
const std::string D = "first_stage_model.decoder.";
constexpr int kMult[4] = {1, 2, 4, 4};
constexpr float kGnEps = 1e-6f;
}  // namespace

VaeDecoder::Res VaeDecoder::load_res(const Checkpoint& ck, const std::string& p, int in,
                                     int out) const {
    Res r;
    r.in = in;
    r.out = out;
    r.n1 = ck.norm(p + ".norm1", in);
    r.c1 = ck.conv(p + ".conv1", in, out, 3);
    r.n2 = ck.norm(p + ".norm2", out);
    r.c2 = ck.conv(p + ".conv2", out, out, 3);
    if (in != out) r.skip = ck.conv(p + ".nin_shortcut", in, out, 1);
    return r;
}

VaeDecoder::VaeDecoder(const Checkpoint& ck) {
    const auto& ci = ck.get(D + "conv_in.weight");
    if (ci.shape.size() != 4 || ci.shape[1] != 4)
        fail(ck.path(), ": '", ci.name, "' is not a 4-channel VAE decoder input conv");
    block_in_ = static_cast<int>(ci.shape[0]);
    ch_ = block_in_ / kMult[3];
    if (ch_ % 32 != 0) fail(ck.path(), ": VAE decoder width ", ch_, " is not a multiple of 32");
    post_quant_ = ck.conv("first_stage_model.post_quant_conv", 4, 4, 1);
    conv_in_ = ck.conv(D + "conv_in", 4, block_in_, 3);
    mid1_ = load_res(ck, D + "mid.block_1", block_in_, block_in_);
    mid2_ = load_res(ck, D + "mid.block_2", block_in_, block_in_);
    attn_norm_ = ck.norm(D + "mid.attn_1.norm", block_in_);
    q_ = ck.conv(D + "mid.attn_1.q", block_in_, block_in_, 1);
    k_ = ck.conv(D + "mid.attn_1.k", block_in_, block_in_, 1);
    v_ = ck.conv(D + "mid.attn_1.v", block_in_, block_in_, 1);
    proj_ = ck.conv(D + "mid.attn_1.proj_out", block_in_, block_in_, 1);
    int bin = block_in_;
    for (int i = 3; i >= 0; --i) {
        const int bout = ch_ * kMult[i];
        for (int j = 0; j < 3; ++j) {
            up_[i].push_back(load_res(
                ck, D + "up." + std::to_string(i) + ".block." + std::to_string(j), bin, bout));
            bin = bout;
        }
        if (i != 0)
            up_conv_[i] = ck.conv(D + "up." + std::to_string(i) + ".upsample.conv", bin, bin, 3);
    }
    norm_out_ = ck.norm(D + "norm_out", bin);
    conv_out_ = ck.conv(D + "conv_out", bin, 3, 3);
}

void VaeDecoder::run_res(ThreadPool& pool, const Res& r, std::vector<float>& x, int H,
                         int W) const {
    const int64_t HW = static_cast<int64_t>(H) * W;
    std::vector<float> h = x;
    group_norm(pool, h.data(), r.in, HW, 32, kGnEps, r.n1, true);
    h = conv2d(pool, r.c1, h.data(), H, W, 1, 1);
    group_norm(pool, h.data(), r.out, HW, 32, kGnEps, r.n2, true);
    h = conv2d(pool, r.c2, h.data(), H, W, 1, 1);
    if (r.in != r.out) x = conv2d(pool, r.skip, x.data(), H, W, 1, 0);
    for (size_t i = 0; i < h.size(); ++i) x[i] += h[i];
}

std::vector<float> VaeDecoder::decode(ThreadPool& pool, const std::vector<float>& z, int H,
                                      int W) const {
    std::vector<float> x = conv2d(pool, post_quant_, z.data(), H, W, 1, 0);
    x = conv2d(pool, conv_in_, x.data(), H, W, 1, 1);
    run_res(pool, mid1_, x, H, W);
    {  // single-head self-attention over the H·W positions, d = block_in
        const int C = block_in_;
        const int64_t T = static_cast<int64_t>(H) * W;
        std::vector<float> h = x;
        group_norm(pool, h.data(), C, T, 32, kGnEps, attn_norm_, false);
        auto q = transpose(conv2d(pool, q_, h.data(), H, W, 1, 0).data(), C, T);  // [T][C]
        auto k = transpose(conv2d(pool, k_, h.data(), H, W, 1, 0).data(), C, T);
        auto v = transpose(conv2d(pool, v_, h.data(), H, W, 1, 0).data(), C, T);
        std::vector<float> a(static_cast<size_t>(T * C));
        attention(pool, q.data(), C, k.data(), C, v.data(), C, a.data(), T, T, 1, C, false);
        h = transpose(a.data(), T, C);  // [C][T]
        h = conv2d(pool, proj_, h.data(), H, W, 1, 0);
        for (size_t i = 0; i < x.size(); ++i) x[i] += h[i];
    }
    run_res(pool, mid2_, x, H, W);
    for (int i = 3; i >= 0; --i) {
        for (const Res& r : up_[i]) run_res(pool, r, x, H, W);
        if (i != 0) {
            const int C = up_[i].back().out;
            std::vector<float> u(static_cast<size_t>(C) * 4 * H * W);
            for (int c = 0; c < C; ++c)
                for (int yy = 0; yy < 2 * H; ++yy)
                    for (int xx = 0; xx < 2 * W; ++xx)
                        u[(static_cast<int64_t>(c) * 2 * H + yy) * 2 * W + xx] =
                            x[(static_cast<int64_t>(c) * H + yy / 2) * W + xx / 2];
            H *= 2, W *= 2;
            x = conv2d(pool, up_conv_[i], u.data(), H, W, 1, 1);
        }
    }
    group_norm(pool, x.data(), up_[0].back().out, static_cast<int64_t>(H) * W, 32, kGnEps,
               norm_out_, true);
    return conv2d(pool, conv_out_, x.data(), H, W, 1, 1);
}

}  // namespace duan::diffusion
