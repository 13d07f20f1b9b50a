#include "diffusion/sd_synth.h"

#include <cmath>

#include "core/error.h"
#include "core/random.h"

namespace duan::diffusion {

namespace {

const std::string kUnet = "model.diffusion_model.";
const std::string kVae = "first_stage_model.";

class Builder {
  public:
    explicit Builder(const SdSynthSpec& s) : s_(s) {}
    std::vector<SdTensorShape> build() {
        for (const SdTextSpec& t : s_.text) text(t);
        unet();
        if (s_.vae) vae(s_.vae_spec);
        return std::move(t_);
    }

  private:
    const SdSynthSpec& s_;
    std::vector<SdTensorShape> t_;

    void add(const std::string& n, std::vector<int64_t> s) { t_.push_back({n, std::move(s)}); }
    void lin(const std::string& p, int64_t in, int64_t out, bool bias = true) {
        add(p + ".weight", {out, in});
        if (bias) add(p + ".bias", {out});
    }
    void conv(const std::string& p, int64_t in, int64_t out, int64_t k) {
        add(p + ".weight", {out, in, k, k});
        add(p + ".bias", {out});
    }
    void norm(const std::string& p, int64_t c) {
        add(p + ".weight", {c});
        add(p + ".bias", {c});
    }

    // ---- text encoders ------------------------------------------------------------------------
    void text(const SdTextSpec& t) {
        const std::string& p = t.prefix;
        const int D = t.width;
        if (t.openclip) {
            add(p + "token_embedding.weight", {t.vocab, D});
            add(p + "positional_embedding", {t.positions, D});
            for (int i = 0; i < t.layers; ++i) {
                const std::string L = p + "transformer.resblocks." + std::to_string(i) + ".";
                norm(L + "ln_1", D);
                norm(L + "ln_2", D);
                add(L + "attn.in_proj_weight", {3 * D, D});
                add(L + "attn.in_proj_bias", {3 * D});
                lin(L + "attn.out_proj", D, D);
                lin(L + "mlp.c_fc", D, t.mlp);
                lin(L + "mlp.c_proj", t.mlp, D);
            }
            norm(p + "ln_final", D);
            if (t.proj) add(p + "text_projection", {D, t.proj});
            return;
        }
        add(p + "embeddings.token_embedding.weight", {t.vocab, D});
        add(p + "embeddings.position_embedding.weight", {t.positions, D});
        for (int i = 0; i < t.layers; ++i) {
            const std::string L = p + "encoder.layers." + std::to_string(i) + ".";
            norm(L + "layer_norm1", D);
            norm(L + "layer_norm2", D);
            for (const char* q : {"q_proj", "k_proj", "v_proj", "out_proj"})
                lin(L + "self_attn." + q, D, D);
            lin(L + "mlp.fc1", D, t.mlp);
            lin(L + "mlp.fc2", t.mlp, D);
        }
        norm(p + "final_layer_norm", D);
    }

    // ---- UNet (openaimodel.UNetModel, LDM names) ---------------------------------------------
    void res(const std::string& p, int in, int out) {
        norm(p + ".in_layers.0", in);
        conv(p + ".in_layers.2", in, out, 3);
        lin(p + ".emb_layers.1", 4 * s_.mc, out);
        norm(p + ".out_layers.0", out);
        conv(p + ".out_layers.3", out, out, 3);
        if (in != out) conv(p + ".skip_connection", in, out, 1);
    }
    void attn(const std::string& p, int ch, int depth) {
        norm(p + ".norm", ch);
        if (s_.linear_proj)
            lin(p + ".proj_in", ch, ch);
        else
            conv(p + ".proj_in", ch, ch, 1);
        for (int d = 0; d < depth; ++d) {
            const std::string t = p + ".transformer_blocks." + std::to_string(d) + ".";
            for (const char* a : {"attn1", "attn2"}) {
                const int kv = std::string(a) == "attn2" ? s_.ctx : ch;
                lin(t + a + ".to_q", ch, ch, false);
                lin(t + a + ".to_k", kv, ch, false);
                lin(t + a + ".to_v", kv, ch, false);
                lin(t + a + ".to_out.0", ch, ch);
            }
            lin(t + "ff.net.0.proj", ch, 8 * ch);  // GEGLU: value and gate, 4·ch each
            lin(t + "ff.net.2", 4 * ch, ch);
            for (const char* n : {"norm1", "norm2", "norm3"}) norm(t + n, ch);
        }
        if (s_.linear_proj)
            lin(p + ".proj_out", ch, ch);
        else
            conv(p + ".proj_out", ch, ch, 1);
    }
    void unet() {
        const int mc = s_.mc, L = static_cast<int>(s_.mult.size());
        const std::string& P = kUnet;
        lin(P + "time_embed.0", mc, 4 * mc);
        lin(P + "time_embed.2", 4 * mc, 4 * mc);
        if (s_.adm) {
            lin(P + "label_emb.0.0", s_.adm, 4 * mc);
            lin(P + "label_emb.0.2", 4 * mc, 4 * mc);
        }
        conv(P + "input_blocks.0.0", 4, mc, 3);
        std::vector<int> chans = {mc};
        int ch = mc, idx = 0;
        for (int l = 0; l < L; ++l) {
            for (int r = 0; r < 2; ++r) {
                const std::string p = P + "input_blocks." + std::to_string(++idx);
                res(p + ".0", ch, s_.mult[l] * mc);
                ch = s_.mult[l] * mc;
                if (s_.depth[l]) attn(p + ".1", ch, s_.depth[l]);
                chans.push_back(ch);
            }
            if (l != L - 1) {
                conv(P + "input_blocks." + std::to_string(++idx) + ".0.op", ch, ch, 3);
                chans.push_back(ch);
            }
        }
        res(P + "middle_block.0", ch, ch);
        attn(P + "middle_block.1", ch, s_.mid_depth);
        res(P + "middle_block.2", ch, ch);
        idx = 0;
        for (int l = L - 1; l >= 0; --l)
            for (int i = 0; i < 3; ++i, ++idx) {
                const std::string p = P + "output_blocks." + std::to_string(idx);
                const int ich = chans.back();
                chans.pop_back();
                res(p + ".0", ch + ich, mc * s_.mult[l]);
                ch = mc * s_.mult[l];
                if (s_.depth[l]) attn(p + ".1", ch, s_.depth[l]);
                if (l > 0 && i == 2) conv(p + (s_.depth[l] ? ".2" : ".1") + ".conv", ch, ch, 3);
            }
        norm(P + "out.0", mc);
        conv(P + "out.2", mc, 4, 3);
    }

    // ---- VAE (ldm.modules.diffusionmodules.model Encoder/Decoder) -----------------------------
    void vres(const std::string& p, int in, int out) {
        norm(p + ".norm1", in);
        conv(p + ".conv1", in, out, 3);
        norm(p + ".norm2", out);
        conv(p + ".conv2", out, out, 3);
        if (in != out) conv(p + ".nin_shortcut", in, out, 1);
    }
    void vmid(const std::string& p, int ch) {
        vres(p + ".block_1", ch, ch);
        norm(p + ".attn_1.norm", ch);
        for (const char* n : {"q", "k", "v", "proj_out"}) conv(p + ".attn_1." + n, ch, ch, 1);
        vres(p + ".block_2", ch, ch);
    }
    void vae(const SdVaeSpec& v) {
        const int L = static_cast<int>(v.mult.size());
        if (v.encoder) {
            const std::string E = kVae + "encoder.";
            conv(E + "conv_in", 3, v.enc_ch, 3);
            int ch = v.enc_ch;
            for (int l = 0; l < L; ++l) {
                const int out = v.enc_ch * v.mult[l];
                for (int b = 0; b < 2; ++b, ch = out)
                    vres(E + "down." + std::to_string(l) + ".block." + std::to_string(b), ch, out);
                if (l != L - 1)
                    conv(E + "down." + std::to_string(l) + ".downsample.conv", ch, ch, 3);
            }
            vmid(E + "mid", ch);
            norm(E + "norm_out", ch);
            conv(E + "conv_out", ch, 8, 3);
            conv(kVae + "quant_conv", 8, 8, 1);
        }
        conv(kVae + "post_quant_conv", 4, 4, 1);
        const std::string D = kVae + "decoder.";
        int ch = v.dec_ch * v.mult.back();
        conv(D + "conv_in", 4, ch, 3);
        vmid(D + "mid", ch);
        for (int l = L - 1; l >= 0; --l) {
            const int out = v.dec_ch * v.mult[l];
            for (int b = 0; b < 3; ++b, ch = out)
                vres(D + "up." + std::to_string(l) + ".block." + std::to_string(b), ch, out);
            if (l != 0) conv(D + "up." + std::to_string(l) + ".upsample.conv", ch, ch, 3);
        }
        norm(D + "norm_out", ch);
        conv(D + "conv_out", ch, 3, 3);
    }
};

bool ends_with(const std::string& s, const char* e) {
    const size_t n = std::char_traits<char>::length(e);
    return s.size() >= n && s.compare(s.size() - n, n, e) == 0;
}
bool has(const std::string& s, const char* e) {
    return s.find(e) != std::string::npos;
}

}  // namespace

SdSynthSpec sd_synth_preset(const std::string& name) {
    SdSynthSpec s;
    s.name = name;
    const std::string vit_l = "cond_stage_model.transformer.text_model.";
    if (name == "sd15") {
        s.mult = {1, 2, 4, 4};
        s.depth = {1, 1, 1, 0};
        s.text = {{vit_l, 768, 12, 3072, 49408, 77, false, 0}};
        s.note = "Stable Diffusion 1.5 (UNet 860M, CLIP ViT-L/14 text 123M, VAE 84M)";
    } else if (name == "sd2") {
        s.mult = {1, 2, 4, 4};
        s.depth = {1, 1, 1, 0};
        s.ctx = 1024;
        s.linear_proj = true;
        s.text = {{"cond_stage_model.model.", 1024, 24, 4096, 49408, 77, true, 1024}};
        s.note = "Stable Diffusion 2.x (UNet 865M, OpenCLIP ViT-H/14 text 354M, VAE 84M)";
    } else if (name == "sdxl") {
        s.mult = {1, 2, 4};
        s.depth = {0, 2, 10};
        s.mid_depth = 10;
        s.ctx = 2048;
        s.adm = 2816;
        s.linear_proj = true;
        s.text = {
            {"conditioner.embedders.0.transformer.text_model.", 768, 12, 3072, 49408, 77, false, 0},
            {"conditioner.embedders.1.model.", 1280, 32, 5120, 49408, 77, true, 1280}};
        s.note = "SDXL base 1.0 (UNet 2.57B, CLIP ViT-L 123M + OpenCLIP bigG 695M, VAE 84M)";
    } else {
        fail("unknown Stable Diffusion preset '", name, "' (sd15, sd2, sdxl)");
    }
    return s;
}

const std::vector<std::string>& sd_synth_preset_names() {
    static const std::vector<std::string> n = {"sd15", "sd2", "sdxl"};
    return n;
}

std::vector<SdTensorShape> sd_synth_tensors(const SdSynthSpec& s) {
    if (s.mult.size() != s.depth.size() || s.mult.empty())
        fail("SD spec ", s.name, ": one transformer depth per level is needed");
    return Builder(s).build();
}

void sd_synth_fill(const SdTensorShape& t, uint64_t seed, std::vector<float>& out) {
    const int64_t n = t.numel();
    out.resize(static_cast<size_t>(n));
    const std::string& nm = t.name;
    const bool bias = ends_with(nm, ".bias") || ends_with(nm, "_bias");
    // Norm scales (GroupNorm/LayerNorm weights, 1-D): 1. UNet's in_layers.0/out_layers.0/out.0
    // and the VAE's norm* are norms too, named by position.
    if (!bias && t.shape.size() == 1) {
        std::fill(out.begin(), out.end(), 1.0f);
        return;
    }
    // Biases and the token/position embedding tables N(0, 0.02²) (trained CLIPs' rows are of that
    // scale); matrices and conv kernels N(0, 1/fan_in).
    const float scale =
        bias || has(nm, "embedding") ? 0.02f : 1.0f / std::sqrt(static_cast<float>(n / t.shape[0]));
    fill_normal(out.data(), n, seed, scale);
}

SdSynthStats write_sd_synth(const SdSynthSpec& s, const std::string& out, uint64_t seed,
                            const SdConvertOptions& o) {
    const std::vector<SdTensorShape> ts = sd_synth_tensors(s);
    std::vector<SdTensorSource> src;
    SdSynthStats st;
    for (const SdTensorShape& t : ts) {
        src.push_back({t.name, t.shape, DType::F32});
        st.n_params += t.numel();
    }
    st.n_tensors = static_cast<int>(ts.size());
    write_sd_gguf(
        out, src,
        [&](size_t i) {
            std::vector<float> v;
            sd_synth_fill(ts[i], splitmix64(seed + i), v);
            return v;
        },
        o,
        [&](gguf::Metadata& m) {
            m.set("general.name", gguf::Value::from_string("duan synth --sd " + s.name +
                                                           ": random weights, shape of " + s.note));
        });
    return st;
}

}  // namespace duan::diffusion
