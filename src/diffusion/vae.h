// The AutoencoderKL decoder of SD 1.x (the encoder, for img2img, is vae_encoder.h; the blocks they
// share are vae_blocks.h). Widths come from the checkpoint (decoder.conv_in out channels = ch·4;
// ch_mult 1,2,4,4; 3 res blocks per level; the mid block has one single-head attention).
//   latent [4][h][w] (already divided by 0.18215)  ->  image [3][8h][8w] in about [-1, 1]
#pragma once
#include <vector>

#include "diffusion/vae_blocks.h"

namespace duan::diffusion {

class VaeDecoder {
  public:
    static constexpr float kScale = 0.18215f;

    explicit VaeDecoder(const Checkpoint& ck);
    std::vector<float> decode(ThreadPool& pool, const std::vector<float>& z, int h, int w) const;

  private:
    Conv2d post_quant_, conv_in_, conv_out_, up_conv_[4];
    VaeMidBlock mid_;
    Norm norm_out_;
    std::vector<VaeResBlock> up_[4];
    int ch_ = 0, block_in_ = 0;
};

}  // namespace duan::diffusion
