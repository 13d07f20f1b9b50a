// The AutoencoderKL decoder of SD 1.x (only the decoder is built; the encoder is not needed for
// txt2img). Widths come from the checkpoint (decoder.conv_in out channels = ch·4; ch_mult 1,2,4,4;
// 3 res blocks per level; one single-head attention block in the middle).
//   latent [4][h][w] (already divided by 0.18215)  ->  image [3][8h][8w] in about [-1, 1]
#pragma once
#include <vector>

#include "diffusion/weights.h"

namespace duan::diffusion {

class VaeDecoder {
  public:
    static constexpr float kScale = 0.18215f;

    explicit VaeDecoder(const Checkpoint& ck);
    std::vector<float> decode(ThreadPool& pool, const std::vector<float>& z, int h, int w) const;

  private:
    struct Res {
        Norm n1, n2;
        Conv2d c1, c2, skip;
        int in = 0, out = 0;
    };
    Res load_res(const Checkpoint& ck, const std::string& p, int in, int out) const;
    void run_res(ThreadPool& pool, const Res& r, std::vector<float>& x, int H, int W) const;

    Conv2d post_quant_, conv_in_, conv_out_, up_conv_[4];
    Res mid1_, mid2_;
    Norm attn_norm_, norm_out_;
    Conv2d q_, k_, v_, proj_;
    std::vector<Res> up_[4];
    int ch_ = 0, block_in_ = 0;
};

}  // namespace duan::diffusion
