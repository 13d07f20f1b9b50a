// CLIP ViT-L/14 text encoder (SD 1.x conditioning): token + position embeddings, 12 pre-LN
// transformer layers (12 heads of 64, causal mask, MLP 3072 with quick-GELU), final LayerNorm.
// SD1 uses the last layer's output after the final LayerNorm (clip_skip 1).
#pragma once
#include <vector>

#include "diffusion/weights.h"

namespace duan::diffusion {

class ClipTextEncoder {
  public:
    static constexpr int kDim = 768, kHeads = 12, kLayers = 12, kMlp = 3072, kCtx = 77;

    explicit ClipTextEncoder(const Checkpoint& ck);
    // tokens: n·77 ids (chunks encoded independently). Returns [n·77][768].
    std::vector<float> encode(ThreadPool& pool, const std::vector<int32_t>& tokens) const;

  private:
    struct Layer {
        Norm ln1, ln2;
        Linear q, k, v, o, fc1, fc2;
    };
    Mat tok_emb_, pos_emb_;
    std::vector<Layer> layers_;
    Norm final_ln_;
};

}  // namespace duan::diffusion
