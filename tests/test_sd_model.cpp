// SD 1.x model stages and the whole txt2img loop against the reference dumps
// (testdata/sd/runs, 64×64, 4 steps, cfg 7, seed 42), on the generated tiny checkpoint.
// Errors are relative: max|ours - ref| / max|ref|. Each tolerance is set from the reference's own
// f16-vs-f32 difference for the same stage (a random UNet amplifies tiny differences, so bit
// equality is not the goal past the noise), see the comment at each check.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <memory>

#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>

#include "diffusion/npy.h"
#include "diffusion/pipeline.h"
#include "diffusion/png.h"
#include "sd_fixture.h"
#include "sd_test_util.h"

using namespace duan::diffusion;
using duan::test::rel_err;

namespace {
std::string run_file(const std::string& run, const std::string& name) {
    return duan::test::testdata("sd/runs/" + run + "/" + name + ".npy");
}
std::vector<float> ref(const std::string& run, const std::string& name) {
    return npy_read(run_file(run, name)).data;
}
// One loaded model per checkpoint dtype, shared by the tests of this binary.
StableDiffusion* model(const std::string& dir, const std::string& dt) {
    static std::map<std::string, std::unique_ptr<StableDiffusion>> cache;
    auto& m = cache[dt];
    if (!m)
        m = std::make_unique<StableDiffusion>(dir + "/tiny_sd1_s0_" + dt + ".safetensors",
                                              duan::test::testdata("sd/clip/merges.txt"),
                                              duan::default_thread_count());
    return m.get();
}
}  // namespace

TEST(SdModel, ClipTextEncoderMatchesReference) {
    DUAN_REQUIRE_TESTDATA("sd/runs/f32_euler_cpu/cond_c_crossattn.npy");
    DUAN_REQUIRE_SD_CHECKPOINT(dir);
    for (const char* dt : {"f32", "f16"}) {
        StableDiffusion* sd = model(dir, dt);
        const std::string run = std::string(dt) + "_euler_cpu";
        const double ec =
            rel_err(sd->encode_prompt("a red ball on the grass"), ref(run, "cond_c_crossattn"));
        const double eu = rel_err(sd->encode_prompt(""), ref(run, "uncond_c_crossattn"));
        std::printf("[clip %s] rel err cond %.3g uncond %.3g\n", dt, ec, eu);
        // The reference's own f16-vs-f32 gap here is 2.7e-3 (cond) / 2.3e-3 (uncond). Our f32 path
        // is within 2e-4 (the quick-GELU f16 table flips a last bit now and then); our f16 path
        // lands at ~2.6e-3 from the f16 reference (and 1.1e-3 from the f32 one): f16 rounding of
        // activations turns tiny summation-order differences into whole-ulp flips. So: f32 1e-3,
        // f16 twice the reference's own precision gap.
        const double tol = std::string(dt) == "f32" ? 1e-3 : 5.4e-3;
        EXPECT_LT(ec, tol);
        EXPECT_LT(eu, tol);
    }
}

TEST(SdModel, UNetEpsMatchesReference) {
    DUAN_REQUIRE_TESTDATA("sd/runs/f32_euler_cpu/eval00_eps_cond.npy");
    DUAN_REQUIRE_SD_CHECKPOINT(dir);
    for (const char* dt : {"f32", "f16"}) {
        StableDiffusion* sd = model(dir, dt);
        const std::string run = std::string(dt) + "_euler_cpu";
        const auto c = ref(run, "cond_c_crossattn"), u = ref(run, "uncond_c_crossattn");
        for (int e : {0, 3}) {
            char p[32];
            std::snprintf(p, sizeof p, "eval%02d_", e);
            const std::string pre = p;
            const auto x = ref(run, pre + "unet_in");
            const auto st = ref(run, pre + "sigma_t_cin_cout_cskip");
            const double rc = rel_err(sd->unet().forward(sd->pool(), x, 8, 8, st[1], c, 77),
                                      ref(run, pre + "eps_cond"));
            const double ru = rel_err(sd->unet().forward(sd->pool(), x, 8, 8, st[1], u, 77),
                                      ref(run, pre + "eps_uncond"));
            std::printf("[unet %s eval%d] rel err cond %.3g uncond %.3g\n", dt, e, rc, ru);
            // Reference f16-vs-f32 gap: 3.3e-3 (eval0 cond) to 1.2e-2 (eval3 cond). Observed here:
            // <= 2.3e-3 for both checkpoints (every conv rounds its inputs to f16, in both runs).
            // Tolerance 5e-3: above what we see, below the reference's own precision gap at eval3.
            EXPECT_LT(rc, 5e-3);
            EXPECT_LT(ru, 5e-3);
        }
    }
}

TEST(SdModel, VaeDecoderMatchesReference) {
    DUAN_REQUIRE_TESTDATA("sd/runs/f32_euler_cpu/vae_decode_raw.npy");
    DUAN_REQUIRE_SD_CHECKPOINT(dir);
    for (const char* dt : {"f32", "f16"}) {
        StableDiffusion* sd = model(dir, dt);
        const std::string run = std::string(dt) + "_euler_cpu";
        const double r =
            rel_err(sd->decode_latent(ref(run, "final_latent"), 8, 8), ref(run, "vae_decode_raw"));
        std::printf("[vae %s] rel err %.3g\n", dt, r);
        // Reference f16-vs-f32 gap of the whole image: 8.3e-3 (from different latents). From the
        // same latent we see ~2e-3 (f16-rounded conv inputs flip ulps); tolerance 5e-3.
        EXPECT_LT(r, 5e-3);
    }
}

// The whole loop: every dumped stage of the run, then the PNG's pixels.
void check_run(const std::string& dir, const std::string& run, const std::string& dt,
               Sampler sampler, const std::string& rng) {
    StableDiffusion* sd = model(dir, dt);
    Txt2ImgParams p = duan::test::reference_params();
    p.sampler = sampler;
    p.rng = rng;
    std::map<std::string, std::vector<float>> got;
    Txt2ImgHooks hooks;
    hooks.dump = [&](const std::string& n, const std::vector<int64_t>&,
                     const std::vector<float>& d) { got[n] = d; };
    const Txt2ImgResult r = sd->txt2img(p, hooks);
    EXPECT_EQ(got["init_noise"], ref(run, "init_noise")) << run;  // bit-exact
    EXPECT_EQ(got["sigmas"], ref(run, "sigmas")) << run;
    for (int e = 0; e < 4; ++e) {
        char pre[16];
        std::snprintf(pre, sizeof pre, "eval%02d_", e);
        for (const char* s : {"x", "eps_guided", "denoised"}) {
            const std::string n = std::string(pre) + s;
            const double er = rel_err(got[n], ref(run, n));
            std::printf("[%s] %-20s rel err %.3g\n", run.c_str(), n.c_str(), er);
            // The reference's own f16-vs-f32 gap on these stages: x and denoised 7.5e-3..7.9e-3,
            // eps_guided 7e-3..1.8e-2 (cfg 7 amplifies cond-uncond differences). We measure 70-90%
            // of that gap (f16-rounded conv inputs flip ulps, as in the reference) and allow 1.5×.
            EXPECT_LT(er, std::string(s) == "eps_guided" ? 2.7e-2 : 1.2e-2) << n;
        }
    }
    const double fl = rel_err(r.latent, ref(run, "final_latent"));
    const double im = rel_err(r.image, ref(run, "vae_decode_raw"));
    std::printf("[%s] final_latent rel err %.3g, vae_decode_raw %.3g\n", run.c_str(), fl, im);
    EXPECT_LT(fl, 1.2e-2);  // reference f16-vs-f32: 7.7e-3 (1.5×)
    EXPECT_LT(im, 1.2e-2);  // reference f16-vs-f32: 8.3e-3 (1.5×)
    // PNG pixels: decode the reference image and compare 8-bit values.
    int w = 0, h = 0, ch = 0;
    const std::string png = duan::test::testdata("sd/runs/" + run + "/image.png");
    unsigned char* px = stbi_load(png.c_str(), &w, &h, &ch, 3);
    ASSERT_NE(px, nullptr);
    ASSERT_EQ(w, 64);
    ASSERT_EQ(h, 64);
    int maxd = 0;
    double sum = 0;
    for (int i = 0; i < w * h * 3; ++i) {
        const int d = std::abs(int(px[i]) - int(r.rgb[i]));
        maxd = std::max(maxd, d);
        sum += d;
    }
    stbi_image_free(px);
    std::printf("[%s] PNG max |diff| %d/255, mean %.3f\n", run.c_str(), maxd, sum / (w * h * 3));
    // The reference's f16 and f32 images differ by up to 2 levels; we see 1-2. Allow 3.
    EXPECT_LE(maxd, 3);
}

TEST(SdPipeline, EulerCpuF32) {
    DUAN_REQUIRE_TESTDATA("sd/runs/f32_euler_cpu/final_latent.npy");
    DUAN_REQUIRE_SD_CHECKPOINT(dir);
    check_run(dir, "f32_euler_cpu", "f32", Sampler::Euler, "cpu");
}

TEST(SdPipeline, EulerAncestralCudaRngF32) {
    DUAN_REQUIRE_TESTDATA("sd/runs/f32_euler_a_cuda/final_latent.npy");
    DUAN_REQUIRE_SD_CHECKPOINT(dir);
    check_run(dir, "f32_euler_a_cuda", "f32", Sampler::EulerA, "cuda");
}

TEST(SdPipeline, EulerCpuF16) {
    DUAN_REQUIRE_TESTDATA("sd/runs/f16_euler_cpu/final_latent.npy");
    DUAN_REQUIRE_SD_CHECKPOINT(dir);
    check_run(dir, "f16_euler_cpu", "f16", Sampler::Euler, "cpu");
}

TEST(SdPipeline, PngCarriesParameters) {
    std::vector<uint8_t> rgb(8 * 4 * 3, 128);
    auto png = encode_png(rgb.data(), 8, 4, {{"parameters", "a cat\nSteps: 4"}});
    auto t = png_text_chunks(png);
    ASSERT_EQ(t.size(), 1u);
    EXPECT_EQ(t[0].first, "parameters");
    EXPECT_EQ(t[0].second, "a cat\nSteps: 4");
    int w, h, c;
    unsigned char* px =
        stbi_load_from_memory(png.data(), static_cast<int>(png.size()), &w, &h, &c, 3);
    ASSERT_NE(px, nullptr);  // still a valid PNG (CRC and chunk order accepted by a decoder)
    EXPECT_EQ(w, 8);
    EXPECT_EQ(px[0], 128);
    stbi_image_free(px);
}

// The other samplers and schedules have no reference dumps (their formulas are the reference's,
// see sampler.cpp): check that they run, stay finite, and that seeded noise is reproducible.
TEST(SdPipeline, OtherSamplersRun) {
    DUAN_REQUIRE_TESTDATA("sd/clip/merges.txt");
    DUAN_REQUIRE_SD_CHECKPOINT(dir);
    StableDiffusion* sd = model(dir, "f32");
    for (Sampler s : {Sampler::DpmPP2M, Sampler::Ddim, Sampler::Lcm, Sampler::EulerA}) {
        Txt2ImgParams p;
        p.prompt = "a cat";
        p.steps = 2;
        p.cfg = s == Sampler::Lcm ? 1.0f : 5.0f;  // cfg 1 skips the negative pass
        p.width = p.height = 64;
        p.sampler = s;
        p.rng = "cpu";
        if (s == Sampler::EulerA) p.scheduler = Scheduler::Karras;
        auto a = sd->txt2img(p);
        for (float v : a.latent) ASSERT_TRUE(std::isfinite(v)) << sampler_name(s);
        EXPECT_EQ(a.rgb.size(), 64u * 64u * 3u);
        if (s == Sampler::EulerA) {  // draws noise every step: must still be reproducible
            auto b = sd->txt2img(p);
            EXPECT_EQ(a.latent, b.latent) << sampler_name(s) << " is not reproducible";
        }
    }
}
