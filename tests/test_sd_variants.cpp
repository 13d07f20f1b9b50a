// SD 2.x and SDXL UNets: synthetic checkpoints written here (tiny widths, random F32 weights, the
// LDM key names and shapes of each variant) prove that the variant is detected from the shapes
// alone and that the UNet loads and runs with finite output of the right shape.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>

#include "core/error.h"
#include "diffusion/npy.h"
#include "diffusion/pipeline.h"
#include "diffusion/png.h"
#include "diffusion/sd_config.h"
#include "diffusion/sd_synth.h"
#include "diffusion/unet.h"
#include "format/gguf_writer.h"
#include "sd_fixture.h"
#include "sd_test_util.h"

using namespace duan;
using namespace duan::diffusion;
namespace fs = std::filesystem;
using test::TmpDir;

namespace {
struct Spec {
    int mc = 64;
    std::vector<int> mult, depth;
    int mid_depth = 1, ctx = 768, adm = 0;
    bool linear_proj = false;
    // Text encoders (2: SD2's OpenCLIP at width 1024; 3: SDXL's ViT-L 768 + bigG 1280), tiny
    // otherwise: 2 layers, MLP 64, a 64-row token embedding (ids are taken modulo its rows).
    int te = 0;
    // Extra tensors written as given (the VAE copied from the tiny SD1 checkpoint).
    std::vector<std::pair<std::string, std::vector<int64_t>>> fixed;
    std::vector<std::vector<float>> fixed_data;
};

// The spec as the library's builder takes it: tiny text encoders (2 layers, MLP 64, a 64-row
// token embedding: ids are taken modulo its rows), no VAE (the tests add the tiny SD1 one).
SdSynthSpec to_synth(const Spec& s) {
    SdSynthSpec o;
    o.name = "test";
    o.mc = s.mc;
    o.mult = s.mult;
    o.depth = s.depth;
    o.mid_depth = s.mid_depth;
    o.ctx = s.ctx;
    o.adm = s.adm;
    o.linear_proj = s.linear_proj;
    o.vae = false;
    if (s.te == 2) o.text = {{"cond_stage_model.model.", 1024, 2, 64, 64, 77, true, 0}};
    if (s.te == 3)
        o.text = {{"conditioner.embedders.0.transformer.text_model.", 768, 2, 64, 64, 77, false, 0},
                  {"conditioner.embedders.1.model.", 1280, 2, 64, 64, 77, true, 1280}};
    return o;
}

// Writes the spec's tensors (diffusion/sd_synth.h, random F32) and the fixed ones as a GGUF.
class Synth {
  public:
    explicit Synth(const Spec& s) : s_(s) {}
    void write(const std::string& path) {
        const auto t = sd_synth_tensors(to_synth(s_));
        gguf::Writer w(path);
        for (const auto& x : t)
            w.add_tensor(x.name, DType::F32, {x.shape.rbegin(), x.shape.rend()});
        for (const auto& [n, shp] : s_.fixed)
            w.add_tensor(n, DType::F32, {shp.rbegin(), shp.rend()});
        w.begin_data();
        std::vector<float> v;
        for (size_t i = 0; i < t.size(); ++i) {
            sd_synth_fill(t[i], 1 + i, v);
            w.write_tensor_data(t[i].name, v.data(), v.size() * 4);
        }
        for (size_t i = 0; i < s_.fixed.size(); ++i)
            w.write_tensor_data(s_.fixed[i].first, s_.fixed_data[i].data(),
                                s_.fixed_data[i].size() * 4);
        w.finish();
    }

  private:
    const Spec& s_;
};

void check_runs(const Spec& s, SdVersion want, int h, int w) {
    TmpDir tmp("duan_sdvar");
    const std::string path = tmp.path + "/unet.gguf";
    Synth(s).write(path);
    const Checkpoint ck(path);
    const UNetConfig c = unet_config_from(ck);
    EXPECT_EQ(c.version, want);
    EXPECT_EQ(c.mult, s.mult);
    EXPECT_EQ(c.depth, s.depth);
    EXPECT_EQ(c.mid_depth, s.mid_depth);
    EXPECT_EQ(c.context_dim, s.ctx);
    EXPECT_EQ(c.linear_proj, s.linear_proj);
    EXPECT_EQ(c.adm_in, s.adm);
    const UNet u(ck);
    ThreadPool pool(default_thread_count());
    std::mt19937 rng(2);
    std::normal_distribution<float> nd;
    std::vector<float> x(static_cast<size_t>(4 * h * w)), ctx(static_cast<size_t>(77 * s.ctx)),
        y(static_cast<size_t>(s.adm));
    for (auto& v : x) v = nd(rng);
    for (auto& v : ctx) v = nd(rng);
    for (auto& v : y) v = nd(rng);
    const auto out = u.forward(pool, x, h, w, 500.0f, ctx, 77, s.adm ? &y : nullptr);
    ASSERT_EQ(out.size(), x.size());
    double ss = 0;
    for (float v : out) {
        ASSERT_TRUE(std::isfinite(v));
        ss += static_cast<double>(v) * v;
    }
    EXPECT_GT(ss, 0.0);
    if (s.adm) {
        EXPECT_THROW(u.forward(pool, x, h, w, 500.0f, ctx, 77, nullptr), Error);
    }
}
}  // namespace

TEST(SdVariants, Sd1ShapeDetected) {
    Spec s;
    s.mc = 32;
    s.mult = {1, 2, 4, 4};
    s.depth = {1, 1, 1, 0};
    check_runs(s, SdVersion::SD1, 8, 8);
}

TEST(SdVariants, Sd2LoadsAndRuns) {
    Spec s;  // SD 2.x: context 1024, Linear proj_in/out, head_dim 64
    s.mult = {1, 2, 4, 4};
    s.depth = {1, 1, 1, 0};
    s.ctx = 1024;
    s.linear_proj = true;
    check_runs(s, SdVersion::SD2, 16, 8);
}

TEST(SdVariants, SdxlLoadsAndRuns) {
    Spec s;  // SDXL: 3 levels, no attention at level 0, deeper transformers, label_emb
    s.mult = {1, 2, 4};
    s.depth = {0, 2, 3};
    s.mid_depth = 3;
    s.ctx = 2048;
    s.adm = 2816;
    s.linear_proj = true;
    check_runs(s, SdVersion::SDXL, 8, 16);
}

TEST(SdVariants, UnknownContextIsRejected) {
    Spec s;
    s.mc = 32;
    s.mult = {1, 2};
    s.depth = {1, 0};
    s.ctx = 512;
    TmpDir tmp("duan_sdvar");
    Synth(s).write(tmp.path + "/u.gguf");
    const Checkpoint ck(tmp.path + "/u.gguf");
    try {
        (void)unet_config_from(ck);
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("context 512"), std::string::npos) << e.what();
    }
}

namespace {
// The tiny SD1 checkpoint's VAE (first_stage_model.*), to complete a synthetic checkpoint.
void copy_vae(Spec& s, const std::string& sd1) {
    const Checkpoint ck(sd1);
    for (const TensorView& t : ck.tensors())
        if (t.name.rfind("first_stage_model.", 0) == 0) {
            s.fixed.push_back({t.name, t.shape});
            s.fixed_data.push_back(ck.to_f32(t));
        }
}

// prompt -> PNG bytes with a synthetic checkpoint of spec s; checks the conditioning shapes.
void check_end_to_end(Spec& s, const std::string& dir, int ctx, bool v_pred) {
    copy_vae(s, dir + "/tiny_sd1_s0_f32.safetensors");
    TmpDir tmp("duan_sdvar");
    Synth(s).write(tmp.path + "/m.gguf");
    StableDiffusion sd(tmp.path + "/m.gguf", duan::test::testdata("sd/clip/merges.txt"), 2);
    const auto ids = sd.tokenizer().encode_padded("a photo of a cat");
    const auto& c = sd.encode_tokens(ids);
    ASSERT_EQ(c.hidden.size(), static_cast<size_t>(77 * ctx));
    for (float v : c.hidden) ASSERT_TRUE(std::isfinite(v));
    if (s.adm) {
        ASSERT_EQ(c.pooled.size(), 1280u);
        const auto y = StableDiffusion::sdxl_vector(c.pooled, 64, 64);
        ASSERT_EQ(y.size(), 2816u);
        EXPECT_FLOAT_EQ(y[1280], std::cos(64.0f));   // original height 64: cos(64·f_0), f_0 = 1
        EXPECT_FLOAT_EQ(y[1280 + 512], 1.0f);        // crop top 0: cos(0)
        EXPECT_FLOAT_EQ(y[1280 + 512 + 128], 0.0f);  // sin(0)
    } else {
        EXPECT_TRUE(c.pooled.empty());
    }
    Txt2ImgParams p;
    p.prompt = "a photo of a cat";
    p.negative = "blurry";
    p.steps = 2;
    p.width = p.height = 64;
    p.sampler = Sampler::Euler;
    p.rng = "cpu";
    p.v_prediction = v_pred;
    const Txt2ImgResult r = sd.txt2img(p);
    ASSERT_EQ(r.rgb.size(), 64u * 64 * 3);
    const auto png = encode_png(r.rgb.data(), 64, 64);
    ASSERT_GT(png.size(), 8u);
    EXPECT_EQ(png[1], 'P');
    for (float v : r.latent) ASSERT_TRUE(std::isfinite(v));
    for (float v : r.image) ASSERT_TRUE(std::isfinite(v));
    if (s.adm) {  // SDXL with an empty negative prompt: the zeroed uncond hidden states path
        p.negative.clear();
        const Txt2ImgResult r2 = sd.txt2img(p);
        for (float v : r2.latent) ASSERT_TRUE(std::isfinite(v));
        EXPECT_NE(r2.latent, r.latent);
    }
}
}  // namespace

TEST(SdVariants, Sd2PromptToImage) {
    DUAN_REQUIRE_TESTDATA("sd/clip/merges.txt");
    DUAN_REQUIRE_SD_CHECKPOINT(dir);
    Spec s;  // head_dim 64: attention levels need multiples of 64 channels
    s.mult = {1, 2};
    s.depth = {1, 1};
    s.ctx = 1024;
    s.linear_proj = true;
    s.te = 2;
    check_end_to_end(s, dir, 1024, /*v_pred=*/true);
}

TEST(SdVariants, SdxlPromptToImage) {
    DUAN_REQUIRE_TESTDATA("sd/clip/merges.txt");
    DUAN_REQUIRE_SD_CHECKPOINT(dir);
    Spec s;
    s.mc = 32;
    s.mult = {1, 2};
    s.depth = {0, 2};
    s.ctx = 2048;
    s.adm = 2816;
    s.linear_proj = true;
    s.te = 3;
    check_end_to_end(s, dir, 2048, false);
}

// The OpenCLIP encoder against an independent numpy implementation (tests/sd_openclip_ref.py,
// float64, erf-GELU) on a small random one (width 128, 3 layers, MLP 96, projection 32): catches
// slips in the fused q,k,v split, the causal mask, the layer -2 cut, ln_final and the EOS pick.
// duan's GELU goes through the reference's f16 tanh table: about 1e-3 relative; tolerance 1e-2.
TEST(SdVariants, OpenClipMatchesNumpyReference) {
    if (std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0)
        GTEST_SKIP() << "/usr/bin/python3 with numpy is needed for the numpy reference";
    const int D = 128, M = 96, P = 32, V = 100, N = 3;
    std::vector<std::pair<std::string, std::vector<int64_t>>> t = {
        {"token_embedding.weight", {V, D}}, {"positional_embedding", {77, D}}};
    for (int i = 0; i < N; ++i) {
        const std::string L = "transformer.resblocks." + std::to_string(i) + ".";
        for (const char* n : {"ln_1", "ln_2"}) {
            t.push_back({L + n + ".weight", {D}});
            t.push_back({L + n + ".bias", {D}});
        }
        t.push_back({L + "attn.in_proj_weight", {3 * D, D}});
        t.push_back({L + "attn.in_proj_bias", {3 * D}});
        t.push_back({L + "attn.out_proj.weight", {D, D}});
        t.push_back({L + "attn.out_proj.bias", {D}});
        t.push_back({L + "mlp.c_fc.weight", {M, D}});
        t.push_back({L + "mlp.c_fc.bias", {M}});
        t.push_back({L + "mlp.c_proj.weight", {D, M}});
        t.push_back({L + "mlp.c_proj.bias", {D}});
    }
    t.push_back({"ln_final.weight", {D}});
    t.push_back({"ln_final.bias", {D}});
    t.push_back({"text_projection", {D, P}});
    TmpDir tmp("duan_sdvar");
    const std::string pre = "cond_stage_model.model.";
    std::mt19937 rng(3);
    std::normal_distribution<float> nd;
    {
        gguf::Writer w(tmp.path + "/te.gguf");
        for (const auto& [n, shp] : t)
            w.add_tensor(pre + n, DType::F32, {shp.rbegin(), shp.rend()});
        w.begin_data();
        for (const auto& [n, shp] : t) {
            int64_t numel = 1;
            for (int64_t d : shp) numel *= d;
            const bool gain =
                n.find("ln_") != std::string::npos && n.find("weight") != std::string::npos;
            const float sc =
                shp.size() > 1 ? 1.0f / std::sqrt(static_cast<float>(shp.back())) : 0.1f;
            std::vector<float> v(static_cast<size_t>(numel));
            for (auto& x : v) x = gain ? 1.0f + 0.1f * nd(rng) : sc * nd(rng);
            w.write_tensor_data(pre + n, v.data(), v.size() * 4);
            npy_write(tmp.path + "/" + n + ".npy", shp, v.data());
        }
        w.finish();
    }
    // BOS, a few ids, EOS, padding 0 (OpenCLIP's).
    std::vector<int32_t> tok(77, 0);
    const int32_t ids[] = {49406, 320, 1125, 539, 320, 2368, 49407};
    std::copy(std::begin(ids), std::end(ids), tok.begin());
    std::vector<float> tokf(tok.begin(), tok.end());
    npy_write(tmp.path + "/tokens.npy", {77}, tokf.data());
    const std::string cmd = "/usr/bin/python3 '" + std::string(DUAN_SOURCE_DIR) +
                            "/tests/sd_openclip_ref.py' '" + tmp.path + "' " + std::to_string(N);
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    const Checkpoint ck(tmp.path + "/te.gguf");
    const TextTransformer te(ck, pre, TextTransformer::Layout::OpenClip);
    ThreadPool pool(2);
    const auto out = te.encode(pool, tok, /*final_ln=*/true, /*pooled=*/true);
    const NpyArray h = npy_read(tmp.path + "/hidden.npy"), p = npy_read(tmp.path + "/pooled.npy");
    ASSERT_EQ(h.data.size(), out.hidden.size());
    ASSERT_EQ(p.data.size(), out.pooled.size());
    auto rel = [](const std::vector<float>& a, const std::vector<float>& b) {
        double mx = 0, mr = 0;
        for (size_t i = 0; i < a.size(); ++i) {
            mx = std::max(mx, std::fabs(double(a[i]) - b[i]));
            mr = std::max(mr, std::fabs(double(b[i])));
        }
        return mx / mr;
    };
    const double eh = rel(out.hidden, h.data), ep = rel(out.pooled, p.data);
    std::printf("[openclip vs numpy float64] hidden rel err %.3g, pooled %.3g\n", eh, ep);
    EXPECT_LT(eh, 1e-2);
    EXPECT_LT(ep, 1e-2);
}
