// The CLIP text encoders of every SD variant, one pre-LN causal transformer read in either key
// layout with its widths taken from the tensor shapes (heads of 64):
//   transformers CLIPTextModel (HfClip; SD1's ViT-L: cond_stage_model.transformer[.text_model].*,
//   SDXL's ViT-L: conditioner.embedders.0.transformer.text_model.*):
//     embeddings.{token_embedding,position_embedding}, encoder.layers.N.{layer_norm1,
//     layer_norm2, self_attn.{q,k,v,out}_proj, mlp.fc1, mlp.fc2}, final_layer_norm; quick-GELU
//     (the f16 table).
//   OpenCLIP (SD2 ViT-H: cond_stage_model.model.*, SDXL bigG: conditioner.embedders.1.model.*):
//     token_embedding.weight [V][D], positional_embedding [77][D],
//     transformer.resblocks.N.{ln_1,ln_2}, attn.in_proj_weight [3D][D] (fused q,k,v) + bias,
//     attn.out_proj, mlp.c_fc [M][D], mlp.c_proj [D][M], ln_final, text_projection [D][P]
//     (used as x @ text_projection). GELU (the f16 tanh table).
// Output: the hidden states after the layer clip_skip counts from the end (1: the last layer, SD1;
// 2: the penultimate, SD2 and SDXL), optionally through the final LayerNorm; and, on request, the
// pooled vector ln_final(last layer at the EOS token) @ text_projection (SDXL's bigG).
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
    // "conditioner.embedders.0.transformer.text_model." / sd1_prefix(ck) (HfClip).
    TextTransformer(const Checkpoint& ck, const std::string& prefix, Layout layout);
    // SD1's ViT-L prefix: "cond_stage_model.transformer.text_model." (most files) or
    // "cond_stage_model.transformer." (early ones lack ".text_model.").
    static std::string sd1_prefix(const Checkpoint& ck);

    struct Output {
        std::vector<float> hidden;  // [n·77][dim], layer -clip_skip (+ final LN if asked)
        std::vector<float> pooled;  // [n][proj] per chunk (empty unless asked)
    };
    // tokens: n·77 ids (chunks encoded independently).
    Output encode(ThreadPool& pool, const std::vector<int32_t>& tokens, bool final_ln, bool pooled,
                  int clip_skip = 2) const;
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
