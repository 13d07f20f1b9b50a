// The diffusers folder layout: the test writes a diffusers copy of the tiny F16 checkpoint (keys
// renamed LDM -> diffusers by an independent, regex-based inverse of diffusers.cpp; VAE attention
// weights reshaped to Linear [C][C] as diffusers stores them) and expects the same final latent
// as the single file, bit for bit (same weights, same code path).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "core/error.h"
#include "diffusion/pipeline.h"
#include "format/safetensors.h"
#include "sd_fixture.h"
#include "sd_test_util.h"

using namespace duan;
using namespace duan::diffusion;
namespace fs = std::filesystem;

namespace {
std::string sub(const std::string& s, const char* re, const char* fmt) {
    return std::regex_replace(s, std::regex(re), fmt);
}
// LDM -> diffusers, SD1 structure (input_blocks.3·i+j+1 <-> down_blocks.i.*.j, …).
std::string unet_res(const std::string& r) {
    std::string s = r;
    s = sub(s, "^in_layers\\.0\\.", "norm1.");
    s = sub(s, "^in_layers\\.2\\.", "conv1.");
    s = sub(s, "^emb_layers\\.1\\.", "time_emb_proj.");
    s = sub(s, "^out_layers\\.0\\.", "norm2.");
    s = sub(s, "^out_layers\\.3\\.", "conv2.");
    s = sub(s, "^skip_connection\\.", "conv_shortcut.");
    return s;
}
std::string to_diffusers_unet(const std::string& k) {
    std::smatch m;
    static const std::regex inb("^input_blocks\\.(\\d+)\\.(\\d)\\.(.*)$"),
        outb("^output_blocks\\.(\\d+)\\.(\\d)\\.(.*)$"), mid("^middle_block\\.(\\d)\\.(.*)$");
    if (k.rfind("input_blocks.0.0.", 0) == 0) return "conv_in." + k.substr(17);
    if (k.rfind("time_embed.0.", 0) == 0) return "time_embedding.linear_1." + k.substr(13);
    if (k.rfind("time_embed.2.", 0) == 0) return "time_embedding.linear_2." + k.substr(13);
    if (k.rfind("out.0.", 0) == 0) return "conv_norm_out." + k.substr(6);
    if (k.rfind("out.2.", 0) == 0) return "conv_out." + k.substr(6);
    if (std::regex_match(k, m, inb)) {
        const int n = std::stoi(m[1]), s = std::stoi(m[2]);
        const std::string rest = m[3];
        if (n % 3 == 0)
            return "down_blocks." + std::to_string(n / 3 - 1) + ".downsamplers.0.conv." +
                   rest.substr(3);  // "op."
        const std::string b = "down_blocks." + std::to_string((n - 1) / 3);
        const std::string j = std::to_string((n - 1) % 3);
        return s == 0 ? b + ".resnets." + j + "." + unet_res(rest)
                      : b + ".attentions." + j + "." + rest;
    }
    if (std::regex_match(k, m, mid)) {
        const int s = std::stoi(m[1]);
        return s == 1 ? "mid_block.attentions.0." + std::string(m[2])
                      : "mid_block.resnets." + std::to_string(s / 2) + "." + unet_res(m[2]);
    }
    if (std::regex_match(k, m, outb)) {
        const int n = std::stoi(m[1]), s = std::stoi(m[2]);
        const std::string rest = m[3], b = "up_blocks." + std::to_string(n / 3);
        if (s == 0) return b + ".resnets." + std::to_string(n % 3) + "." + unet_res(rest);
        if (rest.rfind("conv.", 0) == 0) return b + ".upsamplers.0." + rest;
        return b + ".attentions." + std::to_string(n % 3) + "." + rest;
    }
    return "";
}
std::string to_diffusers_vae(const std::string& k) {
    std::string s = k;
    std::smatch m;
    static const std::regex up("^decoder\\.up\\.(\\d)\\.(.*)$");
    if (std::regex_match(s, m, up))
        s = "decoder.up_blocks." + std::to_string(3 - std::stoi(m[1])) + "." + std::string(m[2]);
    s = sub(s, "^encoder\\.down\\.(\\d)\\.", "encoder.down_blocks.$1.");
    s = sub(s, "\\.block\\.(\\d)\\.", ".resnets.$1.");
    s = sub(s, "\\.upsample\\.conv\\.", ".upsamplers.0.conv.");
    s = sub(s, "\\.downsample\\.conv\\.", ".downsamplers.0.conv.");
    s = sub(s, "\\.mid\\.block_1\\.", ".mid_block.resnets.0.");
    s = sub(s, "\\.mid\\.block_2\\.", ".mid_block.resnets.1.");
    s = sub(s, "\\.mid\\.attn_1\\.norm\\.", ".mid_block.attentions.0.group_norm.");
    s = sub(s, "\\.mid\\.attn_1\\.([qkv])\\.", ".mid_block.attentions.0.to_$1.");
    s = sub(s, "\\.mid\\.attn_1\\.proj_out\\.", ".mid_block.attentions.0.to_out.0.");
    s = sub(s, "\\.nin_shortcut\\.", ".conv_shortcut.");
    s = sub(s, "\\.norm_out\\.", ".conv_norm_out.");
    return s;
}

void write_diffusers_copy(const std::string& single, const fs::path& dir) {
    const safetensors::File f(single);
    std::vector<test::StTensor> unet, vae, te;
    for (const auto& t : f.tensors()) {
        const std::string& n = t.name;
        auto as = [&t](std::string name) {  // the same data under another name
            return test::StTensor{std::move(name), t.dtype, t.shape, t.data, t.nbytes()};
        };
        if (n.rfind("model.diffusion_model.", 0) == 0) {
            const std::string d = to_diffusers_unet(n.substr(22));
            ASSERT_FALSE(d.empty()) << n;
            unet.push_back(as(d));
        } else if (n.rfind("first_stage_model.", 0) == 0) {
            test::StTensor o = as(to_diffusers_vae(n.substr(18)));
            if (o.name.find("attentions.0.") != std::string::npos && o.shape.size() == 4)
                o.shape.resize(2);  // diffusers: Linear [C][C]
            vae.push_back(o);
        } else if (n.rfind("cond_stage_model.transformer.", 0) == 0) {
            te.push_back(as(n.substr(29)));
        }
    }
    for (const char* s : {"unet", "vae", "text_encoder"}) fs::create_directories(dir / s);
    test::write_safetensors(dir / "unet" / "diffusion_pytorch_model.safetensors", unet);
    test::write_safetensors(dir / "vae" / "diffusion_pytorch_model.safetensors", vae);
    test::write_safetensors(dir / "text_encoder" / "model.safetensors", te);
    std::ofstream(dir / "model_index.json") << "{\"_class_name\": \"StableDiffusionPipeline\"}\n";
}
}  // namespace

TEST(SdDiffusers, KeyMapping) {
    const std::set<int> attn = {1, 2, 3};
    EXPECT_EQ(diffusers_unet_to_ldm("down_blocks.1.resnets.0.time_emb_proj.weight", attn),
              "model.diffusion_model.input_blocks.4.0.emb_layers.1.weight");
    EXPECT_EQ(diffusers_unet_to_ldm("down_blocks.2.downsamplers.0.conv.bias", attn),
              "model.diffusion_model.input_blocks.9.0.op.bias");
    EXPECT_EQ(diffusers_unet_to_ldm("up_blocks.0.upsamplers.0.conv.weight", attn),
              "model.diffusion_model.output_blocks.2.1.conv.weight");
    EXPECT_EQ(diffusers_unet_to_ldm("up_blocks.1.upsamplers.0.conv.weight", attn),
              "model.diffusion_model.output_blocks.5.2.conv.weight");
    EXPECT_EQ(diffusers_unet_to_ldm("mid_block.resnets.1.conv2.weight", attn),
              "model.diffusion_model.middle_block.2.out_layers.3.weight");
    EXPECT_EQ(diffusers_vae_to_ldm("decoder.up_blocks.0.upsamplers.0.conv.weight"),
              "first_stage_model.decoder.up.3.upsample.conv.weight");
    EXPECT_EQ(diffusers_vae_to_ldm("decoder.mid_block.attentions.0.to_out.0.bias"),
              "first_stage_model.decoder.mid.attn_1.proj_out.bias");
    EXPECT_EQ(diffusers_vae_to_ldm("encoder.down_blocks.1.resnets.0.conv_shortcut.weight"),
              "first_stage_model.encoder.down.1.block.0.nin_shortcut.weight");
    EXPECT_EQ(diffusers_unet_to_ldm("something.else", attn), "");
}

TEST(SdDiffusers, SameLatentAsSingleFile) {
    DUAN_REQUIRE_TESTDATA("sd/clip/merges.txt");
    DUAN_REQUIRE_SD_CHECKPOINT(dir);
    const test::TmpDir tmpdir("duan_sddiff");
    const std::string& tmp = tmpdir.path;
    ASSERT_FALSE(HasFailure());  // mkdtemp
    const std::string single = dir + "/tiny_sd1_s0_f16.safetensors";
    write_diffusers_copy(single, tmp);
    Txt2ImgParams p = test::reference_params();
    p.steps = 2;
    const std::string merges = test::testdata("sd/clip/merges.txt");
    std::vector<float> a, b;
    {
        StableDiffusion sd(single, merges, default_thread_count());
        a = sd.txt2img(p).latent;
    }
    {
        StableDiffusion sd(tmp, merges, default_thread_count());
        EXPECT_EQ(sd.checkpoint().container(), "diffusers");
        b = sd.txt2img(p).latent;
    }
    EXPECT_EQ(a, b);
    // A folder without model_index.json is rejected by name.
    fs::remove(fs::path(tmp) / "model_index.json");
    try {
        Checkpoint ck(tmp);
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("model_index.json"), std::string::npos) << e.what();
    }
}
