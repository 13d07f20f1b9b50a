// Random-weight Stable Diffusion checkpoints of a real model's exact shape (duan synth --sd):
// the tensor names and shapes of an original LDM single-file checkpoint (UNet, text encoder(s),
// VAE), so memory and speed can be measured at SD 1.5 / SD 2.x / SDXL size without downloading
// the weights. The same builder writes the tests' tiny variants (narrow widths, 2-layer text
// encoders).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "diffusion/sd_gguf.h"

namespace duan::diffusion {

// A CLIP text transformer: transformers' CLIPTextModel names (SD1, SDXL's first encoder) or
// OpenCLIP's (SD2's ViT-H, SDXL's bigG, with a text_projection of `proj` columns when > 0).
struct SdTextSpec {
    std::string prefix;  // e.g. "cond_stage_model.transformer.text_model."
    int width = 768, layers = 12, mlp = 3072, vocab = 49408, positions = 77;
    bool openclip = false;
    int proj = 0;
};

// AutoencoderKL (z = 4): encoder/decoder base widths, level multipliers, the LDM names.
struct SdVaeSpec {
    int enc_ch = 128, dec_ch = 128;
    std::vector<int> mult = {1, 2, 4, 4};
    bool encoder = true;
};

struct SdSynthSpec {
    std::string name;
    int mc = 320;                  // UNet model_channels
    std::vector<int> mult, depth;  // per level: channel multiplier, transformer depth (0 = none)
    int mid_depth = 1, ctx = 768, adm = 0;  // adm: SDXL's label_emb input (2816)
    bool linear_proj = false;               // SD2/SDXL: proj_in/out are Linear, SD1: 1x1 convs
    std::vector<SdTextSpec> text;
    bool vae = true;
    SdVaeSpec vae_spec;
    const char* note = "";
};

struct SdTensorShape {
    std::string name;
    std::vector<int64_t> shape;  // PyTorch order
    int64_t numel() const { return shape_numel(shape); }
};

// sd15, sd2, sdxl (real sizes); throws for another name.
SdSynthSpec sd_synth_preset(const std::string& name);
const std::vector<std::string>& sd_synth_preset_names();

// Every tensor of the checkpoint, in the order the real structure lists them.
std::vector<SdTensorShape> sd_synth_tensors(const SdSynthSpec& s);

// Initial values of one tensor: norm weights 1, biases and embeddings N(0, 0.02²), weights
// N(0, 1/fan_in).
void sd_synth_fill(const SdTensorShape& t, uint64_t seed, std::vector<float>& out);

struct SdSynthStats {
    int n_tensors = 0;
    int64_t n_params = 0;
};

// Writes the spec as an SD GGUF at o.type (tensor types as `duan convert --sd`).
SdSynthStats write_sd_synth(const SdSynthSpec& s, const std::string& out, uint64_t seed,
                            const SdConvertOptions& o);

}  // namespace duan::diffusion
