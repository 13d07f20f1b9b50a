// duan plan --sd: the SD architecture tables (parameter counts against the published ones and the
// tiny checkpoint's own tensors), FLOPs, the stage memory model, the split arithmetic, the CLI
// JSON.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "diffusion/weights.h"
#include "plan/sd_plan.h"
#include "sd_fixture.h"

namespace duan::plan {
namespace {

const Catalog& catalog() {
    static const Catalog c = load_catalog(std::string(DUAN_SOURCE_DIR) + "/data/devices.json");
    return c;
}

int64_t params(const SdArch& a, SdPart p) {
    return sd_sum(sd_tensors(a), p).params;
}

// Published parameter counts (docs/PLANNING.md, "Stable Diffusion" cites each).
TEST(PlanSd, PresetParameterCountsArePublishedOnes) {
    const SdArch sd15 = sd_preset("sd15"), sd2 = sd_preset("sd2"), xl = sd_preset("sdxl");
    EXPECT_EQ(params(sd15, SdPart::UNet), 859'520'964);
    EXPECT_EQ(params(sd15, SdPart::Text), 123'060'480);
    EXPECT_EQ(params(sd15, SdPart::VaeDecoder), 49'490'199);
    EXPECT_EQ(params(sd15, SdPart::VaeEncoder), 34'163'664);
    EXPECT_EQ(params(sd2, SdPart::UNet), 865'910'724);
    EXPECT_EQ(params(sd2, SdPart::Text), 354'032'640);
    EXPECT_EQ(params(xl, SdPart::UNet), 2'567'463'684);
    EXPECT_EQ(params(xl, SdPart::Text), 123'060'480 + 694'659'840);
}

TEST(PlanSd, PresetErrorsNameTheKnownOnes) {
    try {
        sd_preset("sd3");
        FAIL();
    } catch (const std::exception& e) {
        EXPECT_NE(std::string(e.what()).find("sd15, sd2, sdxl"), std::string::npos) << e.what();
    }
}

// The generated table of the tiny checkpoint's architecture is the checkpoint's tensor list, and
// the bytes `duan convert --sd` would write agree at every type.
TEST(PlanSd, TinyCheckpointTableIsTheFilesTensors) {
    std::string why;
    const std::string& dir = test::SdCheckpoints::dir(&why);
    if (dir.empty()) GTEST_SKIP() << why;
    diffusion::Checkpoint ck(dir + "/tiny_sd1_s0_f16.safetensors");
    const SdArch a = sd_arch_from(ck);
    EXPECT_EQ(a.unet.model_channels, 32);
    EXPECT_EQ(a.vae.dec_ch, 32);
    EXPECT_EQ(a.vae.enc_ch, 128);
    ASSERT_EQ(a.text.size(), 1u);
    EXPECT_EQ(a.text[0].layers, 12);
    const auto gen = sd_tensors(a, DType::F16);
    const auto file = sd_tensors_of(ck);
    std::map<std::string, std::vector<int64_t>> g, f;
    for (const auto& t : gen) g[t.name] = t.shape;
    for (const auto& t : file) f[t.name] = t.shape;
    for (const auto& [n, s] : f) {
        auto it = g.find(n);
        if (it == g.end()) {
            ADD_FAILURE() << "not generated: " << n;
            continue;
        }
        EXPECT_EQ(it->second, s) << n;
    }
    for (const auto& [n, s] : g) EXPECT_TRUE(f.count(n)) << "not in the file: " << n;
    // Manifest counts (make_tiny_sd.py): unet 10,362,468; clip 123,060,480; vae 37,268,007.
    EXPECT_EQ(sd_sum(file, SdPart::UNet).params, 10'362'468);
    EXPECT_EQ(sd_sum(gen, SdPart::Text).params, 123'060'480);
    EXPECT_EQ(sd_sum(gen, SdPart::VaeDecoder).params + sd_sum(gen, SdPart::VaeEncoder).params,
              37'268'007);
    for (DType t : {DType::F16, DType::Q8_0, DType::Q4_0, DType::Q4_K})
        for (SdPart p : {SdPart::Text, SdPart::UNet, SdPart::VaeDecoder})
            EXPECT_EQ(sd_sum(sd_convert(gen, t), p).bytes, sd_sum(sd_convert(file, t), p).bytes)
                << dtype_name(t) << " " << sd_part_name(p);
}

TEST(PlanSd, FlopsKnownValues) {
    const SdArch sd15 = sd_preset("sd15");
    // CLIP ViT-L, 2 chunks of 77: per layer 2·77·(4·768² + 2·768·3072) + 4·77²·768.
    const double layer = 2.0 * 77 * (4.0 * 768 * 768 + 2.0 * 768 * 3072) + 4.0 * 77 * 77 * 768;
    EXPECT_DOUBLE_EQ(sd_text_flops(sd15.text[0], 2), 2 * 12 * layer);
    // SD 1.5 UNet at 64×64: ~0.40 T multiply-adds per evaluation (0.80 TFLOP).
    const double u = sd_unet_flops(sd15.unet, 64, 64);
    EXPECT_GT(u, 0.78e12);
    EXPECT_LT(u, 0.82e12);
    // Everything but attention scales with the pixels; self-attention with their square. Doubling
    // the side: f(2s) - 4 f(s) = 12·Σ 4T²C over the self-attention blocks - 3·(cross-attention K/V
    // projections, which do not depend on the size).
    double quad = 0;
    const double T[4] = {64.0 * 64, 32.0 * 32, 16.0 * 16, 8.0 * 8};
    const double C[4] = {320, 640, 1280, 1280};
    for (int l = 0; l < 3; ++l) quad += 5 * 4 * T[l] * T[l] * C[l];  // 2 input + 3 output blocks
    quad += 4 * T[3] * T[3] * C[3];                                  // middle
    double kv = 0;
    for (int l = 0; l < 3; ++l) kv += 5 * 2 * (2.0 * 77 * 768 * C[l]);
    kv += 2 * (2.0 * 77 * 768 * C[3]);
    EXPECT_NEAR(sd_unet_flops(sd15.unet, 128, 128) - 4 * u, 12 * quad - 3 * kv, 1e3);
    // VAE decoder at 512²: ~1.25 T multiply-adds; above 64×64 latents it runs in 32×32 tiles
    // every 24 (5 × 5 tiles at 128×128).
    const double v = sd_vae_decode_flops(sd15.vae, 64, 64);
    EXPECT_GT(v, 2.4e12);
    EXPECT_LT(v, 2.6e12);
    EXPECT_DOUBLE_EQ(sd_vae_decode_flops(sd15.vae, 128, 128),
                     25 * sd_vae_decode_flops(sd15.vae, 32, 32));
}

TEST(PlanSd, PeakIsTheLargestStageNotTheSum) {
    const SdModel m = sd_model_preset("sd15", "q8_0");
    SdRun r;
    const SdMemory mem = sd_plan_memory(m, r, 4);
    const uint64_t weights = sd_sum(m.tensors, SdPart::Text).bytes +
                             sd_sum(m.tensors, SdPart::UNet).bytes +
                             sd_sum(m.tensors, SdPart::VaeDecoder).bytes;
    EXPECT_LT(mem.peak(), weights + mem.unet.activations + mem.vae.activations);
    EXPECT_EQ(mem.peak(), mem.runtime + mem.tokenizer + mem.heap +
                              std::max({mem.text.weights + mem.text.activations,
                                        mem.unet.weights + mem.unet.activations,
                                        mem.vae.weights + mem.vae.activations}));
    // GGUF: each stage maps its own component (+ the pages of the VAE's vectors read at load).
    EXPECT_LT(mem.unet.weights, sd_sum(m.tensors, SdPart::UNet).bytes +
                                    sd_sum(m.tensors, SdPart::VaeDecoder).bytes / 10);
    EXPECT_GT(mem.unet.weights, sd_sum(m.tensors, SdPart::UNet).bytes * 99 / 100);
    // The split device loads only the VAE decoder.
    EXPECT_LT(mem.split_device, mem.peak());
    // Tiling bounds the VAE's activations at 1024² (below the untiled 512² decode's).
    SdRun big = r;
    big.width = big.height = 1024;
    EXPECT_LT(sd_plan_memory(m, big, 4).vae.activations, mem.vae.activations);
}

TEST(PlanSd, SplitArithmetic) {
    const SdModel m = sd_model_preset("sd15", "q8_0");
    SdRun r;
    r.network_mbps = 10;
    r.rtt_ms = 50;
    const Device phone = catalog().find("xiaomi-14"), a10 = catalog().find("a10");
    const SdPlanRow row = sd_make_row(m, r, phone, a10, catalog(), {}, Profile{});
    const auto& s = row.split;
    EXPECT_EQ(s.latent_bytes, 4u * 64 * 64 * 2 + kResponseHeaderBytes);  // 32 KiB of F16
    EXPECT_DOUBLE_EQ(s.transfer_s, (s.request_bytes + s.latent_bytes) * 8.0 / 10e6 + 0.050);
    EXPECT_DOUBLE_EQ(s.cloud_s, row.cloud_times.text + row.cloud_times.denoise);
    EXPECT_DOUBLE_EQ(s.device_s, row.local.vae + row.local.png);
    EXPECT_DOUBLE_EQ(s.total(), s.cloud_s + s.transfer_s + s.device_s);
    EXPECT_EQ(row.run.evals(), 40);
    EXPECT_DOUBLE_EQ(row.local.denoise, 40 * row.flops_unet_eval / (row.eff_gops * 1e9));
    // The PNG (1.5 B/pixel, base64) is much larger than the latent.
    EXPECT_GT(s.png_bytes, 10 * s.latent_bytes);
    // On a phone CPU 40 UNet evaluations take minutes: a remote mode wins.
    EXPECT_NE(row.faster, "local");
    EXPECT_GT(row.local.total(), 10 * s.cloud_s);
    // At the break-even bandwidth the split and the PNG take the same time.
    ASSERT_GT(s.breakeven_mbps, 0);
    SdRun rb = r;
    rb.network_mbps = s.breakeven_mbps;
    const SdPlanRow b = sd_make_row(m, rb, phone, a10, catalog(), {}, Profile{});
    EXPECT_NEAR(b.split.total(), b.split.cloud_total(), 1e-9);
    // cfg 1 halves the evaluations.
    SdRun r1 = r;
    r1.cfg = 1;
    EXPECT_EQ(r1.evals(), 20);
}

// `duan plan --sd-preset … --json`: one object per device with the documented fields.
TEST(PlanSd, CliJson) {
    const std::string cmd = std::string(DUAN_BINARY) +
                            " plan --sd-preset sd15,sdxl --type q8_0 --device xiaomi-14,a10 "
                            "--cloud-device h100 --network-mbps 50 --steps 10 --json "
                            "--profile /nonexistent.json 2>/dev/null";
    std::unique_ptr<FILE, int (*)(FILE*)> p(popen(cmd.c_str(), "r"), pclose);
    std::string out;
    std::array<char, 4096> buf;
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p.get())) > 0) out.append(buf.data(), n);
    ASSERT_EQ(pclose(p.release()), 0);
    std::istringstream in(out);
    std::string line;
    int rows = 0;
    while (std::getline(in, line)) {
        const auto j = nlohmann::json::parse(line);
        ++rows;
        for (const char* k : {"mode", "fits", "peak_bytes", "local_s", "split_device_s",
                              "split_cloud_s", "transfer_bytes", "split_s", "cloud_total_s",
                              "faster", "flops_unet_eval", "unet_params", "memory"})
            EXPECT_TRUE(j.contains(k)) << k << " in " << line;
        EXPECT_EQ(j["mode"], "sd");
        EXPECT_EQ(j["cloud_device"], "h100");
        EXPECT_EQ(j["unet_evals"], 20);
        EXPECT_EQ(j["transfer_bytes"], 32768 + kResponseHeaderBytes);
    }
    EXPECT_EQ(rows, 4);
}

}  // namespace
}  // namespace duan::plan
