// Which Stable Diffusion variant a checkpoint holds, read from its tensor shapes (no config file
// is needed or trusted):
//   SD 1.x: context 768 (attn2.to_k is [ch][768]), 8 heads, conv 1×1 proj_in/out, 4 levels
//           with attention on levels 0-2 (depth 1), CLIP ViT-L text encoder.
//   SD 2.x: context 1024, head_dim 64, Linear proj_in/out, OpenCLIP ViT-H text encoder
//           (cond_stage_model.model.*), penultimate layer; v-prediction for the 768-px models.
//   SDXL:   context 2048, head_dim 64, Linear proj_in/out, 3 levels (no attention at level 0,
//           transformer depth 2 and 10), label_emb (pooled text + time ids, adm_in 2816), two
//           text encoders (conditioner.embedders.0 ViT-L, .1 OpenCLIP bigG).
#pragma once
#include <string>
#include <vector>

namespace duan::diffusion {

class Checkpoint;

enum class SdVersion { SD1, SD2, SDXL };
const char* sd_version_name(SdVersion v);

struct UNetConfig {
    SdVersion version = SdVersion::SD1;
    int model_channels = 0;    // input_blocks.0.0 out channels
    std::vector<int> mult;     // channel multiplier per level (1,2,4,4 for SD1/2)
    std::vector<int> depth;    // transformer blocks per level (0: no attention)
    int mid_depth = 1;         // transformer blocks in the middle block
    int context_dim = 768;     // cross-attention key/value input width
    int head_dim = 0;          // 0: a fixed 8 heads (SD1); else channels per head (64)
    bool linear_proj = false;  // proj_in/out are Linear (SD2, SDXL) not 1×1 convs
    int adm_in = 0;            // label_emb input width (SDXL 2816), 0: none
    int num_res_blocks = 2;
    int heads(int ch) const { return head_dim ? ch / head_dim : 8; }
};

// Reads the configuration from the UNet tensors' shapes; errors name the tensor that is missing
// or does not fit.
UNetConfig unet_config_from(const Checkpoint& ck);

}  // namespace duan::diffusion
