#include "diffusion/vae_encoder.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "diffusion/vae.h"

namespace duan::diffusion {

namespace {
const std::string E = "first_stage_model.encoder.";
constexpr int kMult[4] = {1, 2, 4, 4};
constexpr int kResBlocks = 2;
constexpr float kGnEps = 1e-6f;
}  // namespace

VaeEncoder::Res VaeEncoder::load_res(const Checkpoint& ck, const std::string& p, int in,
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

VaeEncoder::VaeEncoder(const Checkpoint& ck) {
    const std::string ci_name = E + "conv_in.weight";
    if (!ck.has(ci_name))
        fail(ck.path(), ": no VAE encoder ('", ci_name,
             "' missing); img2img needs the checkpoint's first_stage_model.encoder");
    const auto& ci = ck.get(ci_name);
    if (ci.shape.size() != 4 || ci.shape[1] != 3)
        fail(ck.path(), ": '", ci.name, "' is not a 3-channel VAE encoder input conv");
    ch_ = static_cast<int>(ci.shape[0]);
    if (ch_ % 32 != 0) fail(ck.path(), ": VAE encoder width ", ch_, " is not a multiple of 32");
    conv_in_ = ck.conv(E + "conv_in", 3, ch_, 3);
    int bin = ch_;
    for (int i = 0; i < 4; ++i) {
        const int bout = ch_ * kMult[i];
        for (int j = 0; j < kResBlocks; ++j) {
            down_[i].push_back(load_res(
                ck, E + "down." + std::to_string(i) + ".block." + std::to_string(j), bin, bout));
            bin = bout;
        }
        if (i != 3)
            down_conv_[i] =
                ck.conv(E + "down." + std::to_string(i) + ".downsample.conv", bin, bin, 3);
    }
    block_out_ = bin;
    mid1_ = load_res(ck, E + "mid.block_1", bin, bin);
    mid2_ = load_res(ck, E + "mid.block_2", bin, bin);
    attn_norm_ = ck.norm(E + "mid.attn_1.norm", bin);
    q_ = ck.conv(E + "mid.attn_1.q", bin, bin, 1);
    k_ = ck.conv(E + "mid.attn_1.k", bin, bin, 1);
    v_ = ck.conv(E + "mid.attn_1.v", bin, bin, 1);
    proj_ = ck.conv(E + "mid.attn_1.proj_out", bin, bin, 1);
    norm_out_ = ck.norm(E + "norm_out", bin);
    conv_out_ = ck.conv(E + "conv_out", bin, 8, 3);
    quant_ = ck.conv("first_stage_model.quant_conv", 8, 8, 1);
}

void VaeEncoder::run_res(ThreadPool& pool, const Res& r, std::vector<float>& x, int H,
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

std::vector<float> VaeEncoder::moments(ThreadPool& pool, const std::vector<float>& img, int H,
                                       int W) const {
    if (H <= 0 || W <= 0 || H % 8 != 0 || W % 8 != 0)
        fail("VAE encoder: image size ", W, "x", H, " must be positive multiples of 8");
    if (img.size() != static_cast<size_t>(3) * H * W)
        fail("VAE encoder: image has ", img.size(), " values, expected 3x", H, "x", W);
    std::vector<float> x = conv2d(pool, conv_in_, img.data(), H, W, 1, 1);
    for (int i = 0; i < 4; ++i) {
        for (const Res& r : down_[i]) run_res(pool, r, x, H, W);
        if (i != 3) {
            // LDM's Downsample(with_conv): pad (0, 1, 0, 1) with zeros, then 3×3 stride 2, no
            // padding: [C][H][W] -> [C][H/2][W/2].
            const int C = down_[i].back().out;
            std::vector<float> p(static_cast<size_t>(C) * (H + 1) * (W + 1), 0.0f);
            for (int c = 0; c < C; ++c)
                for (int yy = 0; yy < H; ++yy)
                    std::copy_n(x.data() + (static_cast<int64_t>(c) * H + yy) * W, W,
                                p.data() + (static_cast<int64_t>(c) * (H + 1) + yy) * (W + 1));
            int oh = 0, ow = 0;
            x = conv2d(pool, down_conv_[i], p.data(), H + 1, W + 1, 2, 0, &oh, &ow);
            H = oh, W = ow;
        }
    }
    run_res(pool, mid1_, x, H, W);
    {  // single-head self-attention over the H·W positions, d = block_out
        const int C = block_out_;
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
    group_norm(pool, x.data(), block_out_, static_cast<int64_t>(H) * W, 32, kGnEps, norm_out_,
               true);
    x = conv2d(pool, conv_out_, x.data(), H, W, 1, 1);
    return conv2d(pool, quant_, x.data(), H, W, 1, 0);  // [8][H/8][W/8]
}

std::vector<float> posterior_mean(const std::vector<float>& m, float scale) {
    const size_t n = m.size() / 2;
    std::vector<float> z(m.begin(), m.begin() + static_cast<std::ptrdiff_t>(n));
    for (auto& v : z) v *= scale;
    return z;
}

std::vector<float> posterior_sample(const std::vector<float>& m, Rng& rng, float scale) {
    const size_t n = m.size() / 2;
    const std::vector<float> noise = rng.randn(n);
    std::vector<float> z(n);
    for (size_t i = 0; i < n; ++i) {
        const float logvar = std::min(20.0f, std::max(-30.0f, m[n + i]));
        const float sd = std::exp(0.5f * logvar);
        z[i] = (m[i] + sd * noise[i]) * scale;
    }
    return z;
}

std::vector<float> rgb8_to_image(const uint8_t* rgb, int width, int height) {
    const int64_t HW = static_cast<int64_t>(width) * height;
    std::vector<float> img(static_cast<size_t>(3 * HW));
    for (int c = 0; c < 3; ++c)
        for (int64_t i = 0; i < HW; ++i)
            img[c * HW + i] = static_cast<float>(rgb[i * 3 + c]) / 255.0f * 2.0f - 1.0f;
    return img;
}

}  // namespace duan::diffusion
