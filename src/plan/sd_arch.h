// Stable Diffusion architecture for the plan (`duan plan --sd`): the components' shapes, from a
// checkpoint's tensors or from a preset (SD 1.5, SD 2.x, SDXL), and what they cost:
//   - the tensor table (LDM names and shapes, as the checkpoints and `duan convert --sd` hold
//     them), so bytes at a type are exact: the converter's own rule (diffusion::sd_tensor_type);
//   - FLOPs of one UNet evaluation, of the text encoder(s), of the VAE decode at an image size;
//   - the peak of the activations each stage holds, simulated buffer by buffer as unet.cpp,
//     vae.cpp, vae_tiled.cpp and nn.cpp's conv2d/attention allocate them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "diffusion/sd_config.h"

namespace duan::diffusion {
class Checkpoint;
}

namespace duan::plan {

// A CLIP-style text transformer: HF CLIPTextModel keys (SD1, SDXL's first) or OpenCLIP keys
// (SD2, SDXL's bigG). Heads of 64 (FLOPs do not depend on the head count).
struct SdTextArch {
    std::string prefix;  // "cond_stage_model.transformer.text_model.", "cond_stage_model.model.", …
    bool open_clip = false;
    int dim = 768, layers = 12, mlp = 3072, vocab = 49408, n_pos = 77;
    int proj_dim = 0;     // text_projection [dim][proj] (OpenCLIP), 0 = none
    int layers_run = 12;  // layers evaluated per chunk (pipeline: SD1 all; SD2 / SDXL's ViT-L the
                          // penultimate; bigG all, its last layer feeds the pooled vector)
};

struct SdVaeArch {
    int dec_ch = 128;  // decoder base width: block_in = 4·dec_ch (512 for every SD VAE)
    int enc_ch = 128;  // encoder base width (img2img only; 0 = no encoder in the file)
};

struct SdArch {
    std::string name;
    diffusion::UNetConfig unet;
    std::vector<SdTextArch> text;
    SdVaeArch vae;
};

// "sd15", "sd2", "sdxl" (aliases "sd1", "sd21"). Throws naming the known presets.
SdArch sd_preset(const std::string& name);
const std::vector<std::string>& sd_preset_names();
// From a checkpoint's tensor shapes (sd_config.h for the UNet; the text encoders' and the VAE's
// widths and layer counts from their tensors).
SdArch sd_arch_from(const diffusion::Checkpoint& ck);

enum class SdPart { Text, UNet, VaeDecoder, VaeEncoder, Other };
const char* sd_part_name(SdPart p);
SdPart sd_part_of(const std::string& ldm_name);

struct SdTensor {
    std::string name;
    std::vector<int64_t> shape;  // PyTorch order, outermost first
    DType type = DType::F16;
    SdPart part = SdPart::Other;
    int64_t numel() const;
    uint64_t bytes() const;  // as stored (a quantized conv is [out] rows of in·k·k)
};

// The tensor table of an architecture as a single-file LDM checkpoint holds it, every tensor at
// `src` (F16 or F32).
std::vector<SdTensor> sd_tensors(const SdArch& a, DType src = DType::F16);
// The same table as `duan convert --sd --type target` writes it (sd_tensor_type per tensor).
std::vector<SdTensor> sd_convert(const std::vector<SdTensor>& t, DType target);
std::vector<SdTensor> sd_tensors_of(const diffusion::Checkpoint& ck);

struct SdPartSum {
    int64_t params = 0;
    uint64_t bytes = 0;
};
SdPartSum sd_sum(const std::vector<SdTensor>& t, SdPart p);

// --- FLOPs (multiply-add = 2) ---
// One UNet evaluation on a latent h×w with `ctx_tokens` context tokens (77 per prompt chunk).
// `attn` (optional) receives the part of it in attention scores (Q·Kᵀ and P·V).
double sd_unet_flops(const diffusion::UNetConfig& u, int h, int w, int ctx_tokens = 77,
                     double* attn = nullptr);
// One text encoder over `chunks` 77-token sequences (prompt and negative: 2).
double sd_text_flops(const SdTextArch& t, int chunks);
// The VAE decode of a latent h×w as the pipeline runs it (tiled above 64×64 latents).
double sd_vae_decode_flops(const SdVaeArch& v, int h, int w, double* attn = nullptr);

// --- activation peaks (bytes held at the worst moment of the stage, weights excluded) ---
// act_bytes: bytes per element of the activation copy a matmul makes for its weight type
// (0 for the packed f32 GEMM of safetensors weights, 2 for F16, ~1.06 for the 8/4-bit types).
uint64_t sd_unet_activation_peak(const diffusion::UNetConfig& u, int h, int w, int ctx_tokens,
                                 int threads, double act_bytes);
uint64_t sd_vae_activation_peak(const SdVaeArch& v, int h, int w, int threads);
uint64_t sd_text_activation_peak(const SdTextArch& t, int chunks);

}  // namespace duan::plan
