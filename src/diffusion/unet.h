// The SD 1.x UNet (LDM openaimodel.UNetModel, eps prediction). Widths are read from the checkpoint
// (model_channels = input_blocks.0.0 out channels; channel_mult 1,2,4,4; 2 res blocks per level;
// spatial transformers on levels 0-2 and in the middle, depth 1, 8 heads; context dim 768).
//   x [4][H][W], timestep t (float), context [Lc][768]  ->  eps [4][H][W]
#pragma once
#include <vector>

#include "diffusion/weights.h"

namespace duan::diffusion {

class UNet {
  public:
    explicit UNet(const Checkpoint& ck);
    std::vector<float> forward(ThreadPool& pool, const std::vector<float>& x, int H, int W, float t,
                               const std::vector<float>& context, int64_t Lc) const;
    int model_channels() const { return mc_; }

  private:
    struct Res {
        Norm n1, n2;
        Conv2d c1, c2, skip;  // skip.out == 0 when in == out
        Linear emb;
        int in = 0, out = 0;
    };
    struct Transformer {
        Norm norm, ln1, ln2, ln3;
        Conv2d proj_in, proj_out;
        Linear q1, k1, v1, o1, q2, k2, v2, o2, ff1, ff2;
        int ch = 0;
    };
    // One entry of input/output blocks: a res block (or a down-sampler), optional transformer,
    // optional up-sampler.
    struct Block {
        bool has_res = false, has_attn = false, down = false, up = false;
        Res res;
        Transformer attn;
        Conv2d conv;  // the down-sampling (stride 2) or up-sampling conv
    };

    Res load_res(const Checkpoint& ck, const std::string& p, int in, int out) const;
    Transformer load_attn(const Checkpoint& ck, const std::string& p, int ch) const;
    void run_res(ThreadPool& pool, const Res& r, std::vector<float>& x, int H, int W,
                 const std::vector<float>& emb) const;
    void run_attn(ThreadPool& pool, const Transformer& a, std::vector<float>& x, int H, int W,
                  const std::vector<float>& ctx, int64_t Lc) const;

    int mc_ = 0, emb_dim_ = 0;
    Linear time0_, time2_;
    Conv2d conv_in_, conv_out_;
    Norm out_norm_;
    std::vector<Block> in_, out_;
    Block mid_res1_, mid_res2_;
    Transformer mid_attn_;
};

// The sinusoidal timestep embedding of the reference: [cos(t·f_j) for j<half, sin(t·f_j)],
// f_j = exp(-ln(10000)·j/half).
std::vector<float> timestep_embedding(float t, int dim);

}  // namespace duan::diffusion
