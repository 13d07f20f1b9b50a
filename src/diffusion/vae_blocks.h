// The blocks the AutoencoderKL encoder (vae_encoder.h) and decoder (vae.h) share, as LDM has them:
//  - VaeResBlock: ResnetBlock without a time embedding, [in][H][W] -> [out][H][W]:
//      x = skip(x) + conv2(silu(gn2(conv1(silu(gn1(x))))))   (skip: 1×1 nin_shortcut if in != out)
//  - VaeMidBlock: res block_1, single-head self-attention attn_1 over the H·W positions
//    (d = C; q/k/v/proj_out are 1×1 convs), res block_2; [C][H][W] -> [C][H][W].
// GroupNorm: 32 groups, eps 1e-6.
#pragma once
#include <string>
#include <vector>

#include "diffusion/weights.h"

namespace duan::diffusion {

constexpr float kVaeGnEps = 1e-6f;
constexpr int kVaeMult[4] = {1, 2, 4, 4};  // channel multiplier of each level (ch_mult)

struct VaeResBlock {
    Norm n1, n2;
    Conv2d c1, c2, skip;
    int in = 0, out = 0;

    // p: the block's name without the trailing dot ("first_stage_model.decoder.up.3.block.0").
    static VaeResBlock load(const Checkpoint& ck, const std::string& p, int in, int out);
    // x: [in][H][W], replaced by [out][H][W].
    void forward(ThreadPool& pool, std::vector<float>& x, int H, int W) const;
};

struct VaeMidBlock {
    VaeResBlock res1, res2;
    Norm attn_norm;
    Conv2d q, k, v, proj;
    int ch = 0;

    // p: "first_stage_model.encoder." or "first_stage_model.decoder." (its "mid." is added).
    static VaeMidBlock load(const Checkpoint& ck, const std::string& p, int ch);
    // x: [ch][H][W], in place.
    void forward(ThreadPool& pool, std::vector<float>& x, int H, int W) const;
};

}  // namespace duan::diffusion
