// Memory-side features of the SD pipeline: tiled VAE decoding and releasing a component's mapped
// weights (madvise) without changing results.
#include <gtest/gtest.h>

#include <cmath>

#include "diffusion/pipeline.h"
#include "diffusion/rng.h"
#include "diffusion/vae_tiled.h"
#include "sd_fixture.h"

using namespace duan;
using namespace duan::diffusion;

TEST(SdMemory, TiledVaeDecode) {
    DUAN_REQUIRE_TESTDATA("sd/clip/merges.txt");
    DUAN_REQUIRE_SD_CHECKPOINT(dir);
    const Checkpoint ck(dir + "/tiny_sd1_s0_f32.safetensors");
    const VaeDecoder vae(ck);
    ThreadPool pool(default_thread_count());
    const int h = 24, w = 16;
    std::vector<float> z = make_rng("cpu", 7)->randn(4 * h * w);
    const std::vector<float> full = vae.decode(pool, z, h, w);
    // One tile covering the latent: exactly the untiled decode.
    EXPECT_EQ(vae_decode_tiled(pool, vae, z, h, w, {24, 4}), full);
    // 8×8 tiles overlapping by 4 (5×3 of them): right size, finite,
    // and close to the untiled image away from GroupNorm's per-tile statistics.
    const std::vector<float> tiled = vae_decode_tiled(pool, vae, z, h, w, {8, 4});
    ASSERT_EQ(tiled.size(), full.size());
    double mx = 0, mref = 0;
    for (size_t i = 0; i < full.size(); ++i) {
        ASSERT_TRUE(std::isfinite(tiled[i]));
        mx = std::max(mx, std::fabs(static_cast<double>(tiled[i]) - full[i]));
        mref = std::max(mref, std::fabs(static_cast<double>(full[i])));
    }
    std::printf("[vae tiled 8/4 vs untiled] rel err %.3g\n", mx / mref);
    EXPECT_LT(mx / mref, 1.0);  // per-tile GroupNorm: same scale, not the same values
}

TEST(SdMemory, ReleasedWeightsReadBack) {
    DUAN_REQUIRE_TESTDATA("sd/clip/merges.txt");
    DUAN_REQUIRE_SD_CHECKPOINT(dir);
    StableDiffusion sd(dir + "/tiny_sd1_s0_f32.safetensors",
                       duan::test::testdata("sd/clip/merges.txt"), default_thread_count());
    Txt2ImgParams p;
    p.prompt = "a cat";
    p.steps = 1;
    p.width = p.height = 64;
    p.rng = "cpu";
    const auto a = sd.txt2img(p);  // releases the text encoder's and the UNet's pages
    p.prompt = "a dog";            // a new prompt: the text encoder runs again
    (void)sd.txt2img(p);
    p.prompt = "a cat";
    const auto b = sd.txt2img(p);
    EXPECT_EQ(a.latent, b.latent);
    EXPECT_EQ(a.rgb, b.rgb);
}
