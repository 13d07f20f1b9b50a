// Stable Diffusion building blocks checked against the reference dumps in testdata/sd/runs:
// tokenizer (exact), noise generators (bit-exact), sigma schedule, sampler step formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "diffusion/clip_tokenizer.h"
#include "diffusion/npy.h"
#include "diffusion/rng.h"
#include "diffusion/sampler.h"
#include "testdata.h"

using namespace duan::diffusion;

namespace {
const char* kRuns[] = {"f32_euler_cpu", "f32_euler_cuda", "f32_euler_a_cpu", "f32_euler_a_cuda",
                       "f16_euler_cpu"};
std::string run_file(const std::string& run, const std::string& name) {
    return duan::test::testdata("sd/runs/" + run + "/" + name + ".npy");
}
bool bits_equal(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}
}  // namespace

TEST(SdTokenizer, MatchesReferenceTokens) {
    DUAN_REQUIRE_TESTDATA("sd/clip/merges.txt");
    auto tok = ClipTokenizer::from_merges_file(duan::test::testdata("sd/clip/merges.txt"));
    EXPECT_EQ(tok.n_vocab(), 49408);
    auto cond = tok.encode_padded("a red ball on the grass");
    auto uncond = tok.encode_padded("");
    for (const char* run : kRuns) {
        auto t0 = npy_read(run_file(run, "te_call00_tokens"));
        auto t1 = npy_read(run_file(run, "te_call01_tokens"));
        EXPECT_EQ(std::vector<int32_t>(t0.ints.begin(), t0.ints.end()), cond) << run;
        EXPECT_EQ(std::vector<int32_t>(t1.ints.begin(), t1.ints.end()), uncond) << run;
    }
    std::vector<int32_t> want = {320, 736, 1069, 525, 518, 5922};
    EXPECT_EQ(tok.encode("  A   RED\tball on the grass "), want);
}

TEST(SdTokenizer, SplitRulesAndChunks) {
    DUAN_REQUIRE_TESTDATA("sd/clip/merges.txt");
    auto tok = ClipTokenizer::from_merges_file(duan::test::testdata("sd/clip/merges.txt"));
    // Digits split one by one; contractions split off; punctuation runs group.
    auto ids = tok.encode("it's 42!!");
    ASSERT_GE(ids.size(), 5u);
    EXPECT_EQ(tok.token_text(ids[0]), "it</w>");
    EXPECT_EQ(tok.token_text(ids[1]), "'s</w>");
    EXPECT_EQ(tok.token_text(ids[2]), "4</w>");
    EXPECT_EQ(tok.token_text(ids[3]), "2</w>");
    // 80 words -> 2 chunks of 77 (75 tokens + BOS/EOS each), padded with EOS.
    std::string long_prompt;
    for (int i = 0; i < 80; ++i) long_prompt += "cat ";
    auto p = tok.encode_padded(long_prompt);
    ASSERT_EQ(p.size(), 154u);
    EXPECT_EQ(p[0], ClipTokenizer::kBos);
    EXPECT_EQ(p[76], ClipTokenizer::kEos);
    EXPECT_EQ(p[77], ClipTokenizer::kBos);
    EXPECT_EQ(p[77 + 6], ClipTokenizer::kEos);  // 5 remaining tokens then EOS
    // Non-ASCII bytes are "other" characters (C-locale classes), never crash.
    EXPECT_FALSE(tok.encode("café 東京").empty());
}

TEST(SdTokenizer, PromptAttentionLikeReference) {
    // The examples documented with the reference's parse_prompt_attention.
    using V = std::vector<std::pair<std::string, float>>;
    auto near = [](const V& a, const V& b) {
        if (a.size() != b.size()) return false;
        for (size_t i = 0; i < a.size(); ++i)
            if (a[i].first != b[i].first || std::fabs(a[i].second - b[i].second) > 1e-5f)
                return false;
        return true;
    };
    EXPECT_TRUE(near(parse_prompt_attention("normal text"), V{{"normal text", 1.0f}}));
    EXPECT_TRUE(near(parse_prompt_attention("an (important) word"),
                     V{{"an ", 1.0f}, {"important", 1.1f}, {" word", 1.0f}}));
    EXPECT_TRUE(near(parse_prompt_attention("(unbalanced"), V{{"unbalanced", 1.1f}}));
    EXPECT_TRUE(
        near(parse_prompt_attention("(unnecessary)(parens)"), V{{"unnecessaryparens", 1.1f}}));
    EXPECT_TRUE(near(parse_prompt_attention("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky)))."),
                     V{{"a ", 1.0f},
                       {"house", 1.573f},
                       {" ", 1.1f},
                       {"on", 1.0f},
                       {" a ", 1.1f},
                       {"hill", 0.55f},
                       {", sun, ", 1.1f},
                       {"sky", 1.4641f},
                       {".", 1.1f}}));
    EXPECT_TRUE(
        near(parse_prompt_attention("a BREAK b"), V{{"a ", 1.0f}, {"BREAK", -1.0f}, {" b", 1.0f}}));
    EXPECT_TRUE(near(parse_prompt_attention("\\(x"), V{{"(x", 1.0f}}));
    DUAN_REQUIRE_TESTDATA("sd/clip/merges.txt");
    auto tok = ClipTokenizer::from_merges_file(duan::test::testdata("sd/clip/merges.txt"));
    auto [ids, w] = tok.encode_weighted("a (red:1.5) ball BREAK grass");
    ASSERT_EQ(ids.size(), 154u);  // BREAK starts a new chunk
    EXPECT_EQ(ids[2], 736);       // "red</w>"
    EXPECT_FLOAT_EQ(w[2], 1.5f);
    EXPECT_FLOAT_EQ(w[1], 1.0f);
    EXPECT_EQ(ids[77], ClipTokenizer::kBos);
    EXPECT_EQ(ids[76], ClipTokenizer::kEos);
}

TEST(SdRng, InitialAndAncestralNoiseBitExact) {
    DUAN_REQUIRE_TESTDATA("sd/runs/f32_euler_cpu/init_noise.npy");
    for (const char* run : kRuns) {
        const bool cpu = std::string(run).find("_cpu") != std::string::npos;
        auto ref = npy_read(run_file(run, "init_noise"));
        auto rng = make_rng(cpu ? "cpu" : "cuda", 42);
        EXPECT_TRUE(bits_equal(rng->randn(ref.data.size()), ref.data)) << run;
        for (int k = 0;; ++k) {
            char name[64];
            std::snprintf(name, sizeof name, "step%02d_ancestral_noise", k);
            if (!std::filesystem::exists(run_file(run, name))) break;
            auto an = npy_read(run_file(run, name));
            EXPECT_TRUE(bits_equal(rng->randn(an.data.size()), an.data)) << run << " " << name;
        }
    }
    // Torch's documented first values for seed 42 and the n < 16 double path.
    TorchCpuRng r(42);
    auto z = r.randn(4);
    EXPECT_NEAR(z[0], 0.3367, 1e-4);  // torch.manual_seed(42); torch.randn(4)[0]
}

TEST(SdSchedule, SigmasMatchReference) {
    DUAN_REQUIRE_TESTDATA("sd/runs/f32_euler_cpu/sigmas.npy");
    CompVisSchedule sch;
    auto ref = npy_read(run_file("f32_euler_cpu", "sigmas"));
    auto s = make_sigmas(sch, Scheduler::Discrete, 4);
    EXPECT_TRUE(bits_equal(s, ref.data));
    // Timestep and c_in of every evaluation.
    for (int e = 0; e < 4; ++e) {
        char name[64];
        std::snprintf(name, sizeof name, "eval%02d_sigma_t_cin_cout_cskip", e);
        auto v = npy_read(run_file("f32_euler_cpu", name));
        EXPECT_FLOAT_EQ(v.data[0], s[e]);
        EXPECT_NEAR(sch.sigma_to_t(s[e]), v.data[1], 1e-3) << e;
        EXPECT_FLOAT_EQ(1.0f / std::sqrt(s[e] * s[e] + 1.0f), v.data[2]);
    }
    // Euler-ancestral sigma split.
    auto ref_a = npy_read(run_file("f32_euler_a_cpu", "sigmas"));
    for (int k = 0; k < 3; ++k) {
        char name[64];
        std::snprintf(name, sizeof name, "step%02d_sigma_down_up", k);
        auto du = npy_read(run_file("f32_euler_a_cpu", name));
        auto [down, up] = ancestral_step(ref_a.data[k], ref_a.data[k + 1]);
        EXPECT_FLOAT_EQ(down, du.data[0]);
        EXPECT_FLOAT_EQ(up, du.data[1]);
    }
    // Other schedules are finite, decreasing and end in 0.
    for (auto k : {Scheduler::Karras, Scheduler::Simple, Scheduler::Lcm}) {
        auto v = make_sigmas(sch, k, 6);
        ASSERT_EQ(v.size(), 7u);
        EXPECT_EQ(v.back(), 0.0f);
        for (size_t i = 1; i < v.size(); ++i) EXPECT_LT(v[i], v[i - 1]);
    }
}

TEST(SdSampler, EulerStepsReproduceDumpedChain) {
    DUAN_REQUIRE_TESTDATA("sd/runs/f32_euler_a_cuda/final_latent.npy");
    // Feed the dumped denoised latents back; the sampler must reproduce the dumped x chain.
    for (const char* run : {"f32_euler_cpu", "f32_euler_a_cuda", "f32_euler_a_cpu"}) {
        const bool anc = std::string(run).find("euler_a") != std::string::npos;
        const bool cpu = std::string(run).find("_cpu") != std::string::npos;
        auto sig = npy_read(run_file(run, "sigmas")).data;
        auto rng = make_rng(cpu ? "cpu" : "cuda", 42);
        auto x = rng->randn(256);
        for (auto& v : x) v *= sig[0];
        auto den = [&](const std::vector<float>& xi, float, int i) {
            char name[64];
            std::snprintf(name, sizeof name, "eval%02d_x", i);
            auto xr = npy_read(run_file(run, name)).data;
            EXPECT_TRUE(bits_equal(xi, xr)) << run << " step " << i;
            std::snprintf(name, sizeof name, "eval%02d_denoised", i);
            return npy_read(run_file(run, name)).data;
        };
        auto out = sample(anc ? Sampler::EulerA : Sampler::Euler, den, x, sig, *rng);
        auto fl = npy_read(run_file(run, "final_latent")).data;
        EXPECT_TRUE(bits_equal(out, fl)) << run;
    }
}
