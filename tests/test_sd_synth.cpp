// duan synth --sd: the builder's tensor tables have the real models' parameter counts, and a
// narrowed build of the same structure (UNet, text encoder, full VAE names) loads through the
// pipeline and runs prompt -> image from a quantized GGUF.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "diffusion/pipeline.h"
#include "diffusion/sd_config.h"
#include "diffusion/sd_synth.h"
#include "diffusion/weights.h"
#include "testdata.h"

using namespace duan;
using namespace duan::diffusion;
namespace fs = std::filesystem;

namespace {
// Parameters per component: "unet", "vae", or the text encoder's prefix.
std::map<std::string, int64_t> count(const SdSynthSpec& s) {
    std::map<std::string, int64_t> m;
    for (const auto& t : sd_synth_tensors(s)) {
        const int64_t n = t.numel();
        std::string k = t.name.rfind("model.diffusion_model.", 0) == 0 ? "unet"
                        : t.name.rfind("first_stage_model.", 0) == 0   ? "vae"
                                                                       : "";
        for (const auto& te : s.text)
            if (t.name.rfind(te.prefix, 0) == 0) k = te.prefix;
        EXPECT_FALSE(k.empty()) << t.name;
        m[k] += n;
    }
    return m;
}
}  // namespace

// The published sizes (diffusers' model cards / parameter counts of the released checkpoints;
// the CLIP text models without their position_ids buffer).
TEST(SdSynth, PresetsHaveTheRealParameterCounts) {
    auto sd15 = count(sd_synth_preset("sd15"));
    EXPECT_EQ(sd15["unet"], 859520964);
    EXPECT_EQ(sd15["vae"], 83653863);
    EXPECT_EQ(sd15["cond_stage_model.transformer.text_model."], 123060480);
    auto sd2 = count(sd_synth_preset("sd2"));
    EXPECT_EQ(sd2["unet"], 865910724);
    EXPECT_NEAR(static_cast<double>(sd2["cond_stage_model.model."]), 354.03e6, 0.01e6);  // ViT-H
    auto xl = count(sd_synth_preset("sdxl"));
    EXPECT_EQ(xl["unet"], 2567463684);
    EXPECT_EQ(xl["conditioner.embedders.0.transformer.text_model."], 123060480);
    EXPECT_EQ(xl["conditioner.embedders.1.model."], 694659840);
    EXPECT_EQ(xl["vae"], 83653863);
    EXPECT_THROW(sd_synth_preset("sd3"), Error);
}

// SD1's structure with a narrowed UNet and VAE (32 wide; the SD1 text encoder is loaded at its
// full ViT-L size) written as Q8_0 through the same writer as `duan synth --sd`: loads and makes
// an image.
TEST(SdSynth, NarrowSd1RunsPromptToImage) {
    DUAN_REQUIRE_TESTDATA("sd/clip/merges.txt");
    SdSynthSpec s = sd_synth_preset("sd15");
    s.mc = 32;
    s.vae_spec.enc_ch = s.vae_spec.dec_ch = 32;
    const fs::path dir = fs::temp_directory_path() / ("duan_sdsynth_" + std::to_string(getpid()));
    fs::create_directories(dir);
    const std::string path = (dir / "sd.gguf").string();
    SdConvertOptions o;
    o.type = DType::Q8_0;
    const SdSynthStats st = write_sd_synth(s, path, 7, o);
    EXPECT_GT(st.n_params, 0);
    EXPECT_EQ(unet_config_from(Checkpoint(path)).version, SdVersion::SD1);
    EXPECT_EQ(Checkpoint(path).weight_type(), "Q8_0");  // the UNet's dominant type
    {
        StableDiffusion sd(path, duan::test::testdata("sd/clip/merges.txt"), 2);
        Txt2ImgParams p;
        p.prompt = "a red ball";
        p.steps = 2;
        p.width = p.height = 64;
        p.sampler = Sampler::Euler;
        p.rng = "cpu";
        const Txt2ImgResult r = sd.txt2img(p);
        ASSERT_EQ(r.rgb.size(), 64u * 64 * 3);
        for (float v : r.latent) ASSERT_TRUE(std::isfinite(v));
    }
    fs::remove_all(dir);
}
