#include "plan/sd_arch.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"
#include "diffusion/sd_gguf.h"
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

namespace {
struct Table {
    std::vector<SdTensor>* out;
    DType src;
    void add(const std::string& n, std::vector<int64_t> s) {
        out->push_back({n, std::move(s), src, sd_part_of(n)});
    }
    void vec(const std::string& p, int64_t n) {  // norm or bias pair
        add(p + ".weight", {n});
        add(p + ".bias", {n});
    }
    void linear(const std::string& p, int64_t in, int64_t o, bool bias = true) {
        add(p + ".weight", {o, in});
        if (bias) add(p + ".bias", {o});
    }
    void conv(const std::string& p, int64_t in, int64_t o, int64_t k) {
        add(p + ".weight", {o, in, k, k});
        add(p + ".bias", {o});
    }
};

void unet_res(Table& t, const std::string& p, int in, int out, int emb) {
    t.vec(p + ".in_layers.0", in);
    t.conv(p + ".in_layers.2", in, out, 3);
    t.linear(p + ".emb_layers.1", emb, out);
    t.vec(p + ".out_layers.0", out);
    t.conv(p + ".out_layers.3", out, out, 3);
    if (in != out) t.conv(p + ".skip_connection", in, out, 1);
}

void unet_attn(Table& t, const UNetConfig& u, const std::string& p, int ch, int depth) {
    t.vec(p + ".norm", ch);
    auto proj = [&](const std::string& n) {
        if (u.linear_proj)
            t.linear(n, ch, ch);
        else
            t.conv(n, ch, ch, 1);
    };
    proj(p + ".proj_in");
    for (int d = 0; d < depth; ++d) {
        const std::string b = p + ".transformer_blocks." + std::to_string(d) + ".";
        for (const char* q : {"attn1.to_q", "attn1.to_k", "attn1.to_v"})
            t.linear(b + q, ch, ch, false);
        t.linear(b + "attn1.to_out.0", ch, ch);
        t.linear(b + "attn2.to_q", ch, ch, false);
        t.linear(b + "attn2.to_k", u.context_dim, ch, false);
        t.linear(b + "attn2.to_v", u.context_dim, ch, false);
        t.linear(b + "attn2.to_out.0", ch, ch);
        t.linear(b + "ff.net.0.proj", ch, 8 * ch);
        t.linear(b + "ff.net.2", 4 * ch, ch);
        for (const char* n : {"norm1", "norm2", "norm3"}) t.vec(b + n, ch);
    }
    proj(p + ".proj_out");
}

void unet_tensors(Table& t, const UNetConfig& u) {
    const std::string P = "model.diffusion_model.";
    const int mc = u.model_channels, emb = 4 * mc, levels = static_cast<int>(u.mult.size());
    t.linear(P + "time_embed.0", mc, emb);
    t.linear(P + "time_embed.2", emb, emb);
    if (u.adm_in) {
        t.linear(P + "label_emb.0.0", u.adm_in, emb);
        t.linear(P + "label_emb.0.2", emb, emb);
    }
    t.conv(P + "input_blocks.0.0", 4, mc, 3);
    std::vector<int> chans = {mc};
    int ch = mc, idx = 0;
    for (int l = 0; l < levels; ++l) {
        for (int r = 0; r < u.num_res_blocks; ++r) {
            const std::string p = P + "input_blocks." + std::to_string(++idx);
            unet_res(t, p + ".0", ch, u.mult[l] * mc, emb);
            ch = u.mult[l] * mc;
            if (u.depth[l] > 0) unet_attn(t, u, p + ".1", ch, u.depth[l]);
            chans.push_back(ch);
        }
        if (l != levels - 1) {
            t.conv(P + "input_blocks." + std::to_string(++idx) + ".0.op", ch, ch, 3);
            chans.push_back(ch);
        }
    }
    unet_res(t, P + "middle_block.0", ch, ch, emb);
    unet_attn(t, u, P + "middle_block.1", ch, u.mid_depth);
    unet_res(t, P + "middle_block.2", ch, ch, emb);
    idx = 0;
    for (int l = levels - 1; l >= 0; --l) {
        for (int i = 0; i <= u.num_res_blocks; ++i, ++idx) {
            const int ich = chans.back();
            chans.pop_back();
            const std::string p = P + "output_blocks." + std::to_string(idx);
            unet_res(t, p + ".0", ch + ich, mc * u.mult[l], emb);
            ch = mc * u.mult[l];
            int sub = 1;
            if (u.depth[l] > 0) {
                unet_attn(t, u, p + ".1", ch, u.depth[l]);
                sub = 2;
            }
            if (l > 0 && i == u.num_res_blocks)
                t.conv(p + "." + std::to_string(sub) + ".conv", ch, ch, 3);
        }
    }
    t.vec(P + "out.0", ch);
    t.conv(P + "out.2", mc, 4, 3);
}

void text_tensors(Table& t, const SdTextArch& a) {
    const std::string& P = a.prefix;
    const int D = a.dim;
    if (a.open_clip) {
        t.add(P + "token_embedding.weight", {a.vocab, D});
        t.add(P + "positional_embedding", {a.n_pos, D});
        for (int i = 0; i < a.layers; ++i) {
            const std::string L = P + "transformer.resblocks." + std::to_string(i) + ".";
            t.vec(L + "ln_1", D);
            t.add(L + "attn.in_proj_weight", {3 * D, D});
            t.add(L + "attn.in_proj_bias", {3 * D});
            t.linear(L + "attn.out_proj", D, D);
            t.vec(L + "ln_2", D);
            t.linear(L + "mlp.c_fc", D, a.mlp);
            t.linear(L + "mlp.c_proj", a.mlp, D);
        }
        t.vec(P + "ln_final", D);
        if (a.proj_dim) t.add(P + "text_projection", {D, a.proj_dim});
        return;
    }
    t.add(P + "embeddings.token_embedding.weight", {a.vocab, D});
    t.add(P + "embeddings.position_embedding.weight", {a.n_pos, D});
    for (int i = 0; i < a.layers; ++i) {
        const std::string L = P + "encoder.layers." + std::to_string(i) + ".";
        for (const char* n : {"q_proj", "k_proj", "v_proj", "out_proj"})
            t.linear(L + "self_attn." + n, D, D);
        t.vec(L + "layer_norm1", D);
        t.linear(L + "mlp.fc1", D, a.mlp);
        t.linear(L + "mlp.fc2", a.mlp, D);
        t.vec(L + "layer_norm2", D);
    }
    t.vec(P + "final_layer_norm", D);
}

void vae_res(Table& t, const std::string& p, int in, int out) {
    t.vec(p + ".norm1", in);
    t.conv(p + ".conv1", in, out, 3);
    t.vec(p + ".norm2", out);
    t.conv(p + ".conv2", out, out, 3);
    if (in != out) t.conv(p + ".nin_shortcut", in, out, 1);
}
void vae_attn(Table& t, const std::string& p, int c) {
    t.vec(p + ".norm", c);
    for (const char* n : {"q", "k", "v", "proj_out"}) t.conv(p + "." + n, c, c, 1);
}
constexpr int kVaeMult[4] = {1, 2, 4, 4};

void vae_tensors(Table& t, const SdVaeArch& v) {
    const std::string P = "first_stage_model.";
    if (v.enc_ch > 0) {
        const std::string E = P + "encoder.";
        const int ch = v.enc_ch;
        t.conv(E + "conv_in", 3, ch, 3);
        int bin = ch;
        for (int i = 0; i < 4; ++i) {
            bin = ch * (i == 0 ? 1 : kVaeMult[i - 1]);
            for (int j = 0; j < 2; ++j) {
                vae_res(t, E + "down." + std::to_string(i) + ".block." + std::to_string(j), bin,
                        ch * kVaeMult[i]);
                bin = ch * kVaeMult[i];
            }
            if (i != 3) t.conv(E + "down." + std::to_string(i) + ".downsample.conv", bin, bin, 3);
        }
        vae_res(t, E + "mid.block_1", bin, bin);
        vae_attn(t, E + "mid.attn_1", bin);
        vae_res(t, E + "mid.block_2", bin, bin);
        t.vec(E + "norm_out", bin);
        t.conv(E + "conv_out", bin, 8, 3);
        t.conv(P + "quant_conv", 8, 8, 1);
    }
    t.conv(P + "post_quant_conv", 4, 4, 1);
    const std::string D = P + "decoder.";
    int bin = v.dec_ch * 4;
    t.conv(D + "conv_in", 4, bin, 3);
    vae_res(t, D + "mid.block_1", bin, bin);
    vae_attn(t, D + "mid.attn_1", bin);
    vae_res(t, D + "mid.block_2", bin, bin);
    for (int i = 3; i >= 0; --i) {
        for (int j = 0; j < 3; ++j) {
            vae_res(t, D + "up." + std::to_string(i) + ".block." + std::to_string(j), bin,
                    v.dec_ch * kVaeMult[i]);
            bin = v.dec_ch * kVaeMult[i];
        }
        if (i != 0) t.conv(D + "up." + std::to_string(i) + ".upsample.conv", bin, bin, 3);
    }
    t.vec(D + "norm_out", bin);
    t.conv(D + "conv_out", bin, 3, 3);
}
}  // namespace

std::vector<SdTensor> sd_tensors(const SdArch& a, DType src) {
    std::vector<SdTensor> out;
    Table t{&out, src};
    unet_tensors(t, a.unet);
    vae_tensors(t, a.vae);
    for (const auto& te : a.text) text_tensors(t, te);
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
