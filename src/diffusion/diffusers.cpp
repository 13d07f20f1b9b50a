// The diffusers folder layout of an SD 1.x/2.x checkpoint, opened as the LDM single-file names:
//   model_index.json
//   unet/diffusion_pytorch_model[.fp16].safetensors       -> model.diffusion_model.*
//   vae/diffusion_pytorch_model[.fp16].safetensors        -> first_stage_model.*
//   text_encoder/model[.fp16].safetensors (text_model.*)  -> cond_stage_model.transformer.*
// The renaming follows the block structure (channel_mult of 4 levels, 2 res blocks per UNet
// level, 3 per VAE decoder level); the tensors themselves are used as stored (diffusers' VAE
// attention q/k/v/out are Linear [C][C] where LDM has 1×1 convs [C][C][1][1]: same elements).
#include <filesystem>
#include <set>

#include "core/error.h"
#include "diffusion/weights.h"
#include "format/safetensors.h"

namespace duan::diffusion {

namespace {
namespace fs = std::filesystem;

bool starts(const std::string& s, const std::string& p) {
    return s.compare(0, p.size(), p) == 0;
}
// "a.3.rest" with prefix "a." -> (3, "rest"); false if the key does not have that form.
bool split_index(const std::string& key, const std::string& prefix, int* idx, std::string* rest) {
    if (!starts(key, prefix)) return false;
    size_t i = prefix.size(), j = i;
    while (j < key.size() && std::isdigit(static_cast<unsigned char>(key[j]))) ++j;
    if (j == i || j >= key.size() || key[j] != '.') return false;
    *idx = std::stoi(key.substr(i, j - i));
    *rest = key.substr(j + 1);
    return true;
}
std::string unet_resnet(const std::string& r) {
    static const std::pair<const char*, const char*> m[] = {
        {"norm1.", "in_layers.0."},          {"conv1.", "in_layers.2."},
        {"time_emb_proj.", "emb_layers.1."}, {"norm2.", "out_layers.0."},
        {"conv2.", "out_layers.3."},         {"conv_shortcut.", "skip_connection."}};
    for (const auto& [a, b] : m)
        if (starts(r, a)) return b + r.substr(std::string(a).size());
    return "";
}
std::string vae_resnet(const std::string& r) {
    if (starts(r, "conv_shortcut.")) return "nin_shortcut." + r.substr(14);
    return r;  // norm1, conv1, norm2, conv2 keep their names
}
std::string vae_attn(const std::string& r) {
    static const std::pair<const char*, const char*> m[] = {
        {"group_norm.", "norm."},   {"to_q.", "q."},  {"to_k.", "k."}, {"to_v.", "v."},
        {"to_out.0.", "proj_out."}, {"query.", "q."}, {"key.", "k."},  {"value.", "v."},
        {"proj_attn.", "proj_out."}};
    for (const auto& [a, b] : m)
        if (starts(r, a)) return b + r.substr(std::string(a).size());
    return "";
}
}  // namespace

std::string diffusers_unet_to_ldm(const std::string& k, const std::set<int>& up_with_attn) {
    const std::string P = "model.diffusion_model.";
    int i = 0, j = 0;
    std::string r, r2;
    if (starts(k, "conv_in.")) return P + "input_blocks.0.0." + k.substr(8);
    if (starts(k, "time_embedding.linear_1.")) return P + "time_embed.0." + k.substr(24);
    if (starts(k, "time_embedding.linear_2.")) return P + "time_embed.2." + k.substr(24);
    if (starts(k, "conv_norm_out.")) return P + "out.0." + k.substr(14);
    if (starts(k, "conv_out.")) return P + "out.2." + k.substr(9);
    if (split_index(k, "down_blocks.", &i, &r)) {
        if (split_index(r, "resnets.", &j, &r2)) {
            const std::string m = unet_resnet(r2);
            return m.empty() ? "" : P + "input_blocks." + std::to_string(3 * i + j + 1) + ".0." + m;
        }
        if (split_index(r, "attentions.", &j, &r2))
            return P + "input_blocks." + std::to_string(3 * i + j + 1) + ".1." + r2;
        if (starts(r, "downsamplers.0.conv."))
            return P + "input_blocks." + std::to_string(3 * (i + 1)) + ".0.op." + r.substr(20);
        return "";
    }
    if (starts(k, "mid_block.")) {
        r = k.substr(10);
        if (split_index(r, "resnets.", &j, &r2)) {
            const std::string m = unet_resnet(r2);
            return m.empty() ? "" : P + "middle_block." + std::to_string(2 * j) + "." + m;
        }
        if (starts(r, "attentions.0.")) return P + "middle_block.1." + r.substr(13);
        return "";
    }
    if (split_index(k, "up_blocks.", &i, &r)) {
        if (split_index(r, "resnets.", &j, &r2)) {
            const std::string m = unet_resnet(r2);
            return m.empty() ? "" : P + "output_blocks." + std::to_string(3 * i + j) + ".0." + m;
        }
        if (split_index(r, "attentions.", &j, &r2))
            return P + "output_blocks." + std::to_string(3 * i + j) + ".1." + r2;
        if (starts(r, "upsamplers.0.conv.")) {
            const int sub = up_with_attn.count(i) ? 2 : 1;
            return P + "output_blocks." + std::to_string(3 * i + 2) + "." + std::to_string(sub) +
                   ".conv." + r.substr(18);
        }
    }
    return "";
}

std::string diffusers_vae_to_ldm(const std::string& k) {
    const std::string P = "first_stage_model.";
    for (const char* part : {"encoder.", "decoder."}) {
        const std::string E = part;
        if (!starts(k, E)) continue;
        const std::string r = k.substr(E.size());
        const bool dec = E == "decoder.";
        int i = 0, j = 0;
        std::string a, b;
        if (starts(r, "conv_in.") || starts(r, "conv_out.")) return P + E + r;
        if (starts(r, "conv_norm_out.")) return P + E + "norm_out." + r.substr(14);
        if (starts(r, "mid_block.")) {
            const std::string m = r.substr(10);
            if (split_index(m, "resnets.", &j, &b))
                return P + E + "mid.block_" + std::to_string(j + 1) + "." + vae_resnet(b);
            if (starts(m, "attentions.0.")) {
                const std::string x = vae_attn(m.substr(13));
                return x.empty() ? "" : P + E + "mid.attn_1." + x;
            }
            return "";
        }
        const char* blocks = dec ? "up_blocks." : "down_blocks.";
        if (split_index(r, blocks, &i, &a)) {
            const int lvl = dec ? 3 - i : i;  // diffusers' decoder counts from the lowest res.
            const std::string L = P + E + (dec ? "up." : "down.") + std::to_string(lvl) + ".";
            if (split_index(a, "resnets.", &j, &b))
                return L + "block." + std::to_string(j) + "." + vae_resnet(b);
            if (starts(a, "upsamplers.0.conv.")) return L + "upsample.conv." + a.substr(18);
            if (starts(a, "downsamplers.0.conv.")) return L + "downsample.conv." + a.substr(20);
        }
        return "";
    }
    if (starts(k, "quant_conv.") || starts(k, "post_quant_conv.")) return P + k;
    return "";
}

namespace {
std::string pick(const fs::path& dir, const char* stem) {
    for (const char* suf : {".safetensors", ".fp16.safetensors"}) {
        const fs::path p = dir / (std::string(stem) + suf);
        if (fs::exists(p)) return p.string();
    }
    fail(dir.string(), ": no ", stem,
         ".safetensors (diffusers layout: unet/, vae/, text_encoder/)");
}
}  // namespace

void open_diffusers(Checkpoint& ck, const std::string& dir) {
    const fs::path d(dir);
    if (!fs::exists(d / "model_index.json"))
        fail(dir,
             ": a folder checkpoint must be in the diffusers layout (model_index.json, unet/, "
             "vae/, text_encoder/); model_index.json is missing");
    struct Part {
        const char* sub;
        const char* stem;
        int kind;  // 0 unet, 1 vae, 2 text encoder
    };
    for (const Part& part :
         {Part{"unet", "diffusion_pytorch_model", 0}, Part{"vae", "diffusion_pytorch_model", 1},
          Part{"text_encoder", "model", 2}}) {
        auto f = std::make_shared<safetensors::File>(pick(d / part.sub, part.stem));
        std::set<int> up_with_attn;  // up_blocks with attentions: their up-sampler is at .2
        if (part.kind == 0) {
            int i = 0;
            std::string r;
            for (const auto& t : f->tensors())
                if (split_index(t.name, "up_blocks.", &i, &r) && starts(r, "attentions."))
                    up_with_attn.insert(i);
        }
        ck.add_safetensors(std::move(f), [&](const std::string& key) -> std::string {
            if (part.kind == 0) return diffusers_unet_to_ldm(key, up_with_attn);
            if (part.kind == 1) return diffusers_vae_to_ldm(key);
            if (starts(key, "text_model.")) return "cond_stage_model.transformer." + key;
            return "";  // not used by duan (e.g. position_ids)
        });
    }
}

}  // namespace duan::diffusion
