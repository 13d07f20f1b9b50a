// The text encoders of SD 2.x and SDXL, one pre-LN causal transformer read in either key layout
// with its widths taken from the tensor shapes (heads of 64):
//   OpenCLIP (SD2 ViT-H: cond_stage_model.model.*, SDXL bigG: conditioner.embedders.1.model.*):
//     token_embedding.weight [V][D], positional_embedding [77][D],
//     transformer.resblocks.N.{ln_1,ln_2}, attn.in_proj_weight [3D][D] (fused q,k,v) + bias,
//     attn.out_proj, mlp.c_fc [M][D], mlp.c_proj [D][M], ln_final, text_projection [D][P]
//     (used as x @ text_projection). GELU (the f16 tanh table, like SD1's quick-GELU).
//   transformers CLIPTextModel (SDXL's ViT-L: conditioner.embedders.0.transformer.text_model.*):
//     the SD1 layout (separate q/k/v), quick-GELU.
// Output: the hidden states after layer -2 (the penultimate layer; SD2 and SDXL's clip skip),
// optionally through the final LayerNorm; and, on request, the pooled vector
// ln_final(last layer at the EOS token) @ text_projection (SDXL's bigG).
// A token embedding with fewer than 49408 rows (tiny synthetic test files) takes ids modulo its
// row count; real checkpoints have all 49408.
#pragma once
#include <string>
#include <vector>

#include "diffusion/weights.h"

namespace duan::diffusion {

class TextTransformer {
  public:
    static constexpr int kCtx = 77;
    enum class Layout { OpenClip, HfClip };
    // prefix: "cond_stage_model.model." / "conditioner.embedders.1.model." (OpenClip) or
    // "conditioner.embedders.0.transformer.text_model." (HfClip).
    TextTransformer(const Checkpoint& ck, const std::string& prefix, Layout layout);

    struct Output {
        std::vector<float> hidden;  // [n·77][dim], penultimate layer (+ final LN if asked)
        std::vector<float> pooled;  // [n][proj] per chunk (empty unless asked)
    };
    Output encode(ThreadPool& pool, const std::vector<int32_t>& tokens, bool final_ln,
                  bool pooled) const;
    int dim() const { return dim_; }
    int proj_dim() const { return proj_dim_; }

  private:
    struct Layer {
        Norm ln1, ln2;
        Linear qkv, q, k, v, o, fc1, fc2;  // OpenClip: qkv; HfClip: q, k, v
    };
    void run_layer(ThreadPool& pool, const Layer& l, std::vector<float>& x) const;
    Layout layout_;
    int dim_ = 0, mlp_ = 0, vocab_ = 0, proj_dim_ = 0;
    Mat tok_emb_, pos_emb_;
    std::vector<Layer> layers_;
    Norm final_ln_;
    std::vector<float> proj_;  // [dim][proj_dim] (OpenClip only)
};

}  // namespace duan::diffusion
