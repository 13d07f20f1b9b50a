#include "diffusion/sd_config.h"

#include "core/error.h"
#include "diffusion/weights.h"

namespace duan::diffusion {

const char* sd_version_name(SdVersion v) {
    switch (v) {
        case SdVersion::SD1:
            return "SD 1.x";
        case SdVersion::SD2:
            return "SD 2.x";
        case SdVersion::SDXL:
            return "SDXL";
    }
    return "?";
}

namespace {
const std::string P = "model.diffusion_model.";
int count_blocks(const Checkpoint& ck, const std::string& attn) {
    int d = 0;
    while (ck.has(attn + ".transformer_blocks." + std::to_string(d) + ".norm1.weight")) ++d;
    return d;
}
}  // namespace

UNetConfig unet_config_from(const Checkpoint& ck) {
    UNetConfig c;
    const TensorView& ci = ck.get(P + "input_blocks.0.0.weight");
    if (ci.shape.size() != 4 || ci.shape[1] != 4)
        fail(ck.path(), ": '", ci.name, "' has shape [", ci.shape.size() > 1 ? ci.shape[1] : 0,
             " input channels], expected a 4-channel UNet input conv");
    c.model_channels = static_cast<int>(ci.shape[0]);
    if (c.model_channels % 32 != 0)
        fail(ck.path(), ": UNet model_channels ", c.model_channels, " is not a multiple of 32");
    // input_blocks: 1 + levels·num_res_blocks + (levels-1) down-samplers.
    int n_in = 0;
    while (ck.has(P + "input_blocks." + std::to_string(n_in) + ".0.weight") ||
           ck.has(P + "input_blocks." + std::to_string(n_in) + ".0.in_layers.0.weight") ||
           ck.has(P + "input_blocks." + std::to_string(n_in) + ".0.op.weight"))
        ++n_in;
    if (n_in < 4)
        (void)ck.get(P + "input_blocks." + std::to_string(n_in) + ".0.in_layers.0.weight");
    if (n_in % 3 != 0)
        fail(ck.path(), ": the UNet has ", n_in,
             " input blocks; expected 3 per level (2 res blocks + a down-sampler)");
    const int levels = n_in / 3;
    for (int l = 0; l < levels; ++l) {
        const std::string b = P + "input_blocks." + std::to_string(3 * l + 1);
        const TensorView& w = ck.get(b + ".0.out_layers.3.weight");
        c.mult.push_back(static_cast<int>(w.shape[0]) / c.model_channels);
        c.depth.push_back(count_blocks(ck, b + ".1"));
    }
    c.mid_depth = count_blocks(ck, P + "middle_block.1");
    if (c.mid_depth == 0) fail(ck.path(), ": '", P, "middle_block.1' has no transformer blocks");
    // Context width and projections from the middle block (present in every variant).
    const std::string mt = P + "middle_block.1.";
    const TensorView& k2 = ck.get(mt + "transformer_blocks.0.attn2.to_k.weight");
    if (k2.shape.size() != 2) fail(k2.source, ": '", k2.name, "' is not a matrix");
    c.context_dim = static_cast<int>(k2.shape[1]);
    c.linear_proj = ck.get(mt + "proj_in.weight").shape.size() == 2;
    if (ck.has(P + "label_emb.0.0.weight"))
        c.adm_in = static_cast<int>(ck.get(P + "label_emb.0.0.weight").shape[1]);
    if (c.context_dim == 768 && c.adm_in == 0) {
        c.version = SdVersion::SD1;
        c.head_dim = 0;
    } else if (c.context_dim == 1024 && c.adm_in == 0) {
        c.version = SdVersion::SD2;
        c.head_dim = 64;
    } else if (c.context_dim == 2048 && c.adm_in > 0) {
        c.version = SdVersion::SDXL;
        c.head_dim = 64;
    } else {
        fail(ck.path(), ": unknown UNet variant: cross-attention context ", c.context_dim,
             c.adm_in ? ", with label_emb" : ", without label_emb",
             " (SD 1.x: 768; SD 2.x: 1024; SDXL: 2048 + label_emb)");
    }
    return c;
}

}  // namespace duan::diffusion
