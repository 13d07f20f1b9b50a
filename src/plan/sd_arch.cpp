#include "plan/sd_arch.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"
#include "diffusion/sd_gguf.h"
#include "diffusion/sd_synth.h"
#include "diffusion/weights.h"

namespace duan::plan {

using diffusion::SdVersion;
using diffusion::UNetConfig;

// ---------------------------------------------------------------------------------------------
// Presets. Shapes from the released configs (CompVis v1-inference.yaml, Stability v2-inference,
// sd_xl_base.yaml); docs/PLANNING.md lists the parameter counts these give and where the
// published figures come from.
// ---------------------------------------------------------------------------------------------
namespace {
SdTextArch vit_l(const std::string& prefix, int layers_run) {
    SdTextArch t;
    t.prefix = prefix;
    t.layers_run = layers_run;
    return t;
}
SdTextArch open_clip(const std::string& prefix, int dim, int layers, int proj, int layers_run) {
    SdTextArch t;
    t.prefix = prefix;
    t.open_clip = true;
    t.dim = dim;
    t.layers = layers;
    t.mlp = 4 * dim;
    t.proj_dim = proj;
    t.layers_run = layers_run;
    return t;
}
}  // namespace

const std::vector<std::string>& sd_preset_names() {
    static const std::vector<std::string> n = {"sd15", "sd2", "sdxl"};
    return n;
}

SdArch sd_preset(const std::string& name_in) {
    std::string name = name_in;
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    SdArch a;
    UNetConfig& u = a.unet;
    u.model_channels = 320;
    u.num_res_blocks = 2;
    if (name == "sd15" || name == "sd1" || name == "sd1.5") {
        a.name = "sd15";
        u.version = SdVersion::SD1;
        u.mult = {1, 2, 4, 4};
        u.depth = {1, 1, 1, 0};
        u.context_dim = 768;
        a.text = {vit_l("cond_stage_model.transformer.text_model.", 12)};
    } else if (name == "sd2" || name == "sd21" || name == "sd2.1") {
        a.name = "sd2";
        u.version = SdVersion::SD2;
        u.mult = {1, 2, 4, 4};
        u.depth = {1, 1, 1, 0};
        u.context_dim = 1024;
        u.head_dim = 64;
        u.linear_proj = true;
        a.text = {open_clip("cond_stage_model.model.", 1024, 24, 1024, 23)};
    } else if (name == "sdxl") {
        a.name = "sdxl";
        u.version = SdVersion::SDXL;
        u.mult = {1, 2, 4};
        u.depth = {0, 2, 10};
        u.mid_depth = 10;
        u.context_dim = 2048;
        u.head_dim = 64;
        u.linear_proj = true;
        u.adm_in = 2816;
        a.text = {vit_l("conditioner.embedders.0.transformer.text_model.", 11),
                  open_clip("conditioner.embedders.1.model.", 1280, 32, 1280, 32)};
    } else {
        std::string known;
        for (const auto& n : sd_preset_names()) known += (known.empty() ? "" : ", ") + n;
        fail("--sd-preset: unknown Stable Diffusion preset '", name_in, "' (known: ", known, ")");
    }
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

SdTextArch text_from(const diffusion::Checkpoint& ck, const std::string& prefix, bool oc,
                     int skip_last) {
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
    t.layers_run = std::max(1, t.layers - skip_last);
    return t;
}
}  // namespace

SdArch sd_arch_from(const diffusion::Checkpoint& ck) {
    SdArch a;
    a.name = ck.path();
    a.unet = diffusion::unet_config_from(ck);
    switch (a.unet.version) {
        case SdVersion::SD1:
            a.text = {text_from(ck, "cond_stage_model.transformer.text_model.", false, 0)};
            break;
        case SdVersion::SD2:
            a.text = {text_from(ck, "cond_stage_model.model.", true, 1)};
            break;
        case SdVersion::SDXL:
            a.text = {text_from(ck, "conditioner.embedders.0.transformer.text_model.", false, 1),
                      text_from(ck, "conditioner.embedders.1.model.", true, 0)};
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
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
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
