#include "plan/sd_arch.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"
#include "core/shape.h"
#include "diffusion/sd_gguf.h"
#include "diffusion/sd_synth.h"
#include "diffusion/weights.h"

namespace duan::plan {

using diffusion::SdVersion;
using diffusion::UNetConfig;

namespace {
// Text-encoder layers the pipeline leaves out at the end: SD1 runs every layer; SD2 and SDXL's
// ViT-L stop at the penultimate; SDXL's bigG runs all (its last layer feeds the pooled vector).
int text_layers_skipped(SdVersion v, bool open_clip) {
    return v == SdVersion::SD1 || (v == SdVersion::SDXL && open_clip) ? 0 : 1;
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// Presets: the shapes are diffusion::sd_synth_preset's (the files `duan synth --sd` writes; shapes
// from the released configs, docs/PLANNING.md lists the parameter counts and their sources); the
// plan adds what the pipeline does with them (variant, head width, text layers run).
// ---------------------------------------------------------------------------------------------
const std::vector<std::string>& sd_preset_names() {
    return diffusion::sd_synth_preset_names();
}

SdArch sd_preset(const std::string& name_in) {
    std::string name = name_in;
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name == "sd1" || name == "sd1.5") name = "sd15";
    if (name == "sd21" || name == "sd2.1") name = "sd2";
    const auto& known = sd_preset_names();
    if (std::find(known.begin(), known.end(), name) == known.end()) {
        std::string list;
        for (const auto& n : known) list += (list.empty() ? "" : ", ") + n;
        fail("--sd-preset: unknown Stable Diffusion preset '", name_in, "' (known: ", list, ")");
    }
    const diffusion::SdSynthSpec s = diffusion::sd_synth_preset(name);
    SdArch a;
    a.name = name;
    UNetConfig& u = a.unet;
    u.version = name == "sd15" ? SdVersion::SD1 : name == "sd2" ? SdVersion::SD2 : SdVersion::SDXL;
    u.model_channels = s.mc;
    u.mult = s.mult;
    u.depth = s.depth;
    u.mid_depth = s.mid_depth;
    u.context_dim = s.ctx;
    u.head_dim = u.version == SdVersion::SD1 ? 0 : 64;  // SD1: 8 heads; SD2/SDXL: 64 wide
    u.linear_proj = s.linear_proj;
    u.adm_in = s.adm;
    for (const diffusion::SdTextSpec& t : s.text) {
        SdTextArch x;
        x.prefix = t.prefix;
        x.open_clip = t.openclip;
        x.dim = t.width;
        x.layers = t.layers;
        x.mlp = t.mlp;
        x.vocab = t.vocab;
        x.n_pos = t.positions;
        x.proj_dim = t.proj;
        x.layers_run = std::max(1, t.layers - text_layers_skipped(u.version, t.openclip));
        a.text.push_back(x);
    }
    a.vae.dec_ch = s.vae_spec.dec_ch;
    a.vae.enc_ch = s.vae_spec.encoder ? s.vae_spec.enc_ch : 0;
    return a;
}

// ---------------------------------------------------------------------------------------------
// From a checkpoint
// ---------------------------------------------------------------------------------------------
namespace {
int64_t dim_of(const diffusion::Checkpoint& ck, const std::string& name, size_t i) {
    const auto& t = ck.get(name);
    if (t.shape.size() <= i) fail(t.source, ": '", name, "' has too few dimensions");
    return t.shape[i];
}

SdTextArch text_from(const diffusion::Checkpoint& ck, SdVersion v, const std::string& prefix,
                     bool oc) {
    SdTextArch t;
    t.prefix = prefix;
    t.open_clip = oc;
    const std::string te =
        prefix + (oc ? "token_embedding.weight" : "embeddings.token_embedding.weight");
    t.vocab = static_cast<int>(dim_of(ck, te, 0));
    t.dim = static_cast<int>(dim_of(ck, te, 1));
    const std::string blocks = prefix + (oc ? "transformer.resblocks." : "encoder.layers.");
    const std::string fc1 = oc ? ".mlp.c_fc.weight" : ".mlp.fc1.weight";
    t.layers = 0;
    while (ck.has(blocks + std::to_string(t.layers) + fc1)) ++t.layers;
    if (t.layers == 0) fail(ck.path(), ": no text encoder layers under '", prefix, "'");
    t.mlp = static_cast<int>(dim_of(ck, blocks + "0" + fc1, 0));
    if (oc && ck.has(prefix + "text_projection"))
        t.proj_dim = static_cast<int>(dim_of(ck, prefix + "text_projection", 1));
    t.layers_run = std::max(1, t.layers - text_layers_skipped(v, oc));
    return t;
}
}  // namespace

SdArch sd_arch_from(const diffusion::Checkpoint& ck) {
    SdArch a;
    a.name = ck.path();
    a.unet = diffusion::unet_config_from(ck);
    switch (a.unet.version) {
        case SdVersion::SD1:
            a.text = {
                text_from(ck, a.unet.version, "cond_stage_model.transformer.text_model.", false)};
            break;
        case SdVersion::SD2:
            a.text = {text_from(ck, a.unet.version, "cond_stage_model.model.", true)};
            break;
        case SdVersion::SDXL:
            a.text = {text_from(ck, a.unet.version,
                                "conditioner.embedders.0.transformer.text_model.", false),
                      text_from(ck, a.unet.version, "conditioner.embedders.1.model.", true)};
            break;
    }
    a.vae.dec_ch = static_cast<int>(dim_of(ck, "first_stage_model.decoder.conv_in.weight", 0) / 4);
    a.vae.enc_ch = ck.has("first_stage_model.encoder.conv_in.weight")
                       ? static_cast<int>(dim_of(ck, "first_stage_model.encoder.conv_in.weight", 0))
                       : 0;
    return a;
}

// ---------------------------------------------------------------------------------------------
// Tensor table
// ---------------------------------------------------------------------------------------------
const char* sd_part_name(SdPart p) {
    switch (p) {
        case SdPart::Text:
            return "text";
        case SdPart::UNet:
            return "unet";
        case SdPart::VaeDecoder:
            return "vae_decoder";
        case SdPart::VaeEncoder:
            return "vae_encoder";
        case SdPart::Other:
            return "other";
    }
    return "?";
}

SdPart sd_part_of(const std::string& n) {
    auto starts = [&](const char* p) { return n.rfind(p, 0) == 0; };
    if (starts("model.diffusion_model.")) return SdPart::UNet;
    if (starts("first_stage_model.decoder.") || starts("first_stage_model.post_quant_conv"))
        return SdPart::VaeDecoder;
    if (starts("first_stage_model.")) return SdPart::VaeEncoder;
    if (starts("cond_stage_model.") || starts("conditioner.")) return SdPart::Text;
    return SdPart::Other;
}

int64_t SdTensor::numel() const {
    return shape_numel(shape);
}

uint64_t SdTensor::bytes() const {
    if (shape.empty()) return dtype_row_bytes(type, 1);
    // A row is the innermost dimension, or in·k·k for a (quantized) conv kernel.
    const int64_t row = shape.size() == 4 ? shape[1] * shape[2] * shape[3] : shape.back();
    return static_cast<uint64_t>(numel() / row) * dtype_row_bytes(type, row);
}

std::vector<SdTensor> sd_tensors(const SdArch& a, DType src) {
    // The table comes from the same builder `duan synth --sd` and the tests write checkpoints
    // with (diffusion/sd_synth.h), so the plan counts exactly what those files hold.
    diffusion::SdSynthSpec s;
    s.name = a.name;
    s.mc = a.unet.model_channels;
    s.mult = a.unet.mult;
    s.depth = a.unet.depth;
    s.mid_depth = a.unet.mid_depth;
    s.ctx = a.unet.context_dim;
    s.adm = a.unet.adm_in;
    s.linear_proj = a.unet.linear_proj;
    for (const SdTextArch& t : a.text)
        s.text.push_back(
            {t.prefix, t.dim, t.layers, t.mlp, t.vocab, t.n_pos, t.open_clip, t.proj_dim});
    s.vae_spec.dec_ch = a.vae.dec_ch;
    s.vae_spec.enc_ch = a.vae.enc_ch;
    s.vae_spec.encoder = a.vae.enc_ch > 0;
    std::vector<SdTensor> out;
    for (auto& t : diffusion::sd_synth_tensors(s))
        out.push_back({t.name, std::move(t.shape), src, sd_part_of(t.name)});
    return out;
}

std::vector<SdTensor> sd_convert(const std::vector<SdTensor>& in, DType target) {
    std::vector<SdTensor> out = in;
    for (auto& t : out) t.type = diffusion::sd_tensor_type(t.name, t.shape, t.type, target);
    return out;
}

std::vector<SdTensor> sd_tensors_of(const diffusion::Checkpoint& ck) {
    std::vector<SdTensor> out;
    for (const auto& t : ck.tensors()) {
        SdTensor s{t.name, t.shape, t.type, sd_part_of(t.name)};
        // A quantized conv is stored 2-D [out][in·k·k] in GGUF; its bytes are exact either way.
        out.push_back(std::move(s));
    }
    return out;
}

SdPartSum sd_sum(const std::vector<SdTensor>& t, SdPart p) {
    SdPartSum s;
    for (const auto& x : t)
        if (x.part == p) {
            s.params += x.numel();
            s.bytes += x.bytes();
        }
    return s;
}

}  // namespace duan::plan
