// The AutoencoderKL encoder of SD 1.x (first_stage_model.encoder.* + quant_conv), for img2img.
// Widths come from the checkpoint (encoder.conv_in out channels = ch; ch_mult 1,2,4,4; 2 res
// blocks per level; a downsample after levels 0-2, padded right/bottom by one then a stride-2 3×3
// conv with no padding, as LDM; one single-head attention block in the middle).
//   image [3][H][W] in [-1, 1]  ->  moments [8][H/8][W/8]: mean (channels 0-3), logvar (4-7)
// The diffusion latent is then mean (or mean + exp(logvar/2)·noise, a posterior sample) × 0.18215.
#pragma once
#include <vector>

#include "diffusion/rng.h"
#include "diffusion/vae.h"

namespace duan::diffusion {

class VaeEncoder {
  public:
    explicit VaeEncoder(const Checkpoint& ck);
    // H and W must be positive multiples of 8 (throws otherwise).
    std::vector<float> moments(ThreadPool& pool, const std::vector<float>& img, int H, int W) const;
    int width() const { return ch_; }

  private:
    Conv2d conv_in_, conv_out_, quant_, down_conv_[3];
    std::vector<VaeResBlock> down_[4];
    VaeMidBlock mid_;
    Norm norm_out_;
    int ch_ = 0, block_out_ = 0;
};

// The diffusion latent [4][h][w] from the encoder's moments [8][h][w]:
//  - posterior_mean: mean · 0.18215 (deterministic; what the round-trip test and a caller
//    without a seed use);
//  - posterior_sample: (mean + exp(0.5·clamp(logvar, -30, 20))·noise) · 0.18215 with n = 4·h·w
//    normals drawn from `rng`, as LDM's DiagonalGaussianDistribution.sample (what A1111 and the
//    reference do for img2img).
// scale: the latent scale factor (0.18215 SD1/2; SDXL 0.13025, StableDiffusion::latent_scale()).
std::vector<float> posterior_mean(const std::vector<float>& moments,
                                  float scale = VaeDecoder::kScale);
std::vector<float> posterior_sample(const std::vector<float>& moments, Rng& rng,
                                    float scale = VaeDecoder::kScale);

// [3][H][W] in [-1, 1] from interleaved 8-bit RGB: x = u8/255·2 - 1 (the reference's scaling).
std::vector<float> rgb8_to_image(const uint8_t* rgb, int width, int height);

}  // namespace duan::diffusion
