#include "diffusion/vae.h"

#include <cmath>

#include "core/error.h"

namespace duan::diffusion {

namespace {
const std::string D = "first_stage_model.decoder.";
}  // namespace

VaeDecoder::VaeDecoder(const Checkpoint& ck) {
    const auto& ci = ck.get(D + "conv_in.weight");
    if (ci.shape.size() != 4 || ci.shape[1] != 4)
        fail(ck.path(), ": '", ci.name, "' is not a 4-channel VAE decoder input conv");
    block_in_ = static_cast<int>(ci.shape[0]);
    ch_ = block_in_ / kVaeMult[3];
    if (ch_ % 32 != 0) fail(ck.path(), ": VAE decoder width ", ch_, " is not a multiple of 32");
    post_quant_ = ck.conv("first_stage_model.post_quant_conv", 4, 4, 1);
    conv_in_ = ck.conv(D + "conv_in", 4, block_in_, 3);
    mid_ = VaeMidBlock::load(ck, D, block_in_);
    int bin = block_in_;
    for (int i = 3; i >= 0; --i) {
        const int bout = ch_ * kVaeMult[i];
        for (int j = 0; j < 3; ++j) {
            up_[i].push_back(VaeResBlock::load(
                ck, D + "up." + std::to_string(i) + ".block." + std::to_string(j), bin, bout));
            bin = bout;
        }
        if (i != 0)
            up_conv_[i] = ck.conv(D + "up." + std::to_string(i) + ".upsample.conv", bin, bin, 3);
    }
    norm_out_ = ck.norm(D + "norm_out", bin);
    conv_out_ = ck.conv(D + "conv_out", bin, 3, 3);
}

std::vector<float> VaeDecoder::decode(ThreadPool& pool, const std::vector<float>& z, int H,
                                      int W) const {
    std::vector<float> x = conv2d(pool, post_quant_, z.data(), H, W, 1, 0);
    x = conv2d(pool, conv_in_, x.data(), H, W, 1, 1);
    mid_.forward(pool, x, H, W);
    for (int i = 3; i >= 0; --i) {
        for (const VaeResBlock& r : up_[i]) r.forward(pool, x, H, W);
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
    group_norm(pool, x.data(), up_[0].back().out, static_cast<int64_t>(H) * W, 32, kVaeGnEps,
               norm_out_, true);
    return conv2d(pool, conv_out_, x.data(), H, W, 1, 1);
}

}  // namespace duan::diffusion
