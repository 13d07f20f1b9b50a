// The LDM UNet (openaimodel.UNetModel) of SD 1.x, 2.x and SDXL; the structure is read from the
// tensor shapes (sd_config.h): model_channels, channel_mult, transformer depth per level (0: no
// attention), context width, heads (8, or head_dim 64), conv or Linear proj_in/out, label_emb.
//   x [4][H][W], timestep t (float), context [Lc][context_dim] (+ SDXL: y [adm_in])
//     ->  model output [4][H][W] (eps, or v for v-prediction checkpoints)
#pragma once
#include <vector>

#include "diffusion/sd_config.h"
#include "diffusion/weights.h"

namespace duan::diffusion {

class UNet {
  public:
    explicit UNet(const Checkpoint& ck);
    // y: SDXL's label_emb input (pooled text embedding + time-id embeddings), else null.
    std::vector<float> forward(ThreadPool& pool, const std::vector<float>& x, int H, int W, float t,
                               const std::vector<float>& context, int64_t Lc,
                               const std::vector<float>* y = nullptr) const;
    int model_channels() const { return mc_; }
    const UNetConfig& config() const { return cfg_; }

  private:
    struct Res {
        Norm n1, n2;
        Conv2d c1, c2, skip;  // skip.out == 0 when in == out
        Linear emb;
        int in = 0, out = 0;
    };
    struct TBlock {  // one BasicTransformerBlock
        Norm ln1, ln2, ln3;
        Linear q1, k1, v1, o1, q2, k2, v2, o2, ff1, ff2;
    };
    struct Transformer {  // SpatialTransformer: norm, proj_in, depth × TBlock, proj_out
        Norm norm;
        Conv2d proj_in, proj_out;  // SD1: 1×1 convs
        Linear lin_in, lin_out;    // SD2/SDXL: Linear on the tokens
        std::vector<TBlock> blocks;
        int ch = 0, heads = 8;
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
    Transformer load_attn(const Checkpoint& ck, const std::string& p, int ch, int depth) const;
    void run_res(ThreadPool& pool, const Res& r, std::vector<float>& x, int H, int W,
                 const std::vector<float>& emb) const;
    void run_attn(ThreadPool& pool, const Transformer& a, std::vector<float>& x, int H, int W,
                  const std::vector<float>& ctx, int64_t Lc) const;

    UNetConfig cfg_;
    int mc_ = 0, emb_dim_ = 0;
    Linear time0_, time2_, label0_, label2_;
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
