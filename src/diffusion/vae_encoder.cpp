#include "diffusion/vae_encoder.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "diffusion/vae.h"

namespace duan::diffusion {

namespace {
const std::string E = "first_stage_model.encoder.";
constexpr int kResBlocks = 2;
}  // namespace

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
        const int bout = ch_ * kVaeMult[i];
        for (int j = 0; j < kResBlocks; ++j) {
            down_[i].push_back(VaeResBlock::load(
                ck, E + "down." + std::to_string(i) + ".block." + std::to_string(j), bin, bout));
            bin = bout;
        }
        if (i != 3)
            down_conv_[i] =
                ck.conv(E + "down." + std::to_string(i) + ".downsample.conv", bin, bin, 3);
    }
    block_out_ = bin;
    mid_ = VaeMidBlock::load(ck, E, bin);
    norm_out_ = ck.norm(E + "norm_out", bin);
    conv_out_ = ck.conv(E + "conv_out", bin, 8, 3);
    quant_ = ck.conv("first_stage_model.quant_conv", 8, 8, 1);
}

std::vector<float> VaeEncoder::moments(ThreadPool& pool, const std::vector<float>& img, int H,
                                       int W) const {
    if (H <= 0 || W <= 0 || H % 8 != 0 || W % 8 != 0)
        fail("VAE encoder: image size ", W, "x", H, " must be positive multiples of 8");
    if (img.size() != static_cast<size_t>(3) * H * W)
        fail("VAE encoder: image has ", img.size(), " values, expected 3x", H, "x", W);
    std::vector<float> x = conv2d(pool, conv_in_, img.data(), H, W, 1, 1);
    for (int i = 0; i < 4; ++i) {
        for (const VaeResBlock& r : down_[i]) r.forward(pool, x, H, W);
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
    mid_.forward(pool, x, H, W);
    group_norm(pool, x.data(), block_out_, static_cast<int64_t>(H) * W, 32, kVaeGnEps, norm_out_,
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
