// duan plan: device catalog, app budgets, memory model (against the engine's own allocations and
// the seed article's Qwen table), speed model, check_fits fallbacks, recommend.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "llm/context.h"
#include "llm/model.h"
#include "llm/presets.h"
#include "llm/synth.h"
#include "plan/fit.h"
#include "plan/plan.h"
#include "testdata.h"

namespace duan::plan {
namespace {

const Catalog& catalog() {
    static const Catalog c = load_catalog(std::string(DUAN_SOURCE_DIR) + "/data/devices.json");
    return c;
}

TEST(PlanCatalog, HasTheDevicesTheIssueNames) {
    const auto& c = catalog();
    for (const char* id : {"h100",
                           "a100",
                           "a30",
                           "a10",
                           "snapdragon-8-gen-3",
                           "m4",
                           "a17-pro",
                           "dimensity-9300",
                           "a15",
                           "m1",
                           "xiaomi-14",
                           "iphone-15-pro",
                           "ipad-pro-m4",
                           "macbook-pro-m3",
                           "vivo-x100",
                           "snapdragon-8-gen-2",
                           "snapdragon-8-elite",
                           "a18-pro",
                           "m2",
                           "m3",
                           "dimensity-9400",
                           "tensor-g4",
                           "raspberry-pi-5"}) {
        const Device d = c.find(id);
        EXPECT_GT(d.int8_tops, 0) << id;
        EXPECT_GT(d.memory_bytes, 1'000'000'000u) << id;
        EXPECT_GT(d.mem_bw_gbs, 10) << id;
        EXPECT_FALSE(d.source.empty()) << id;
        if (d.os != "gpu") EXPECT_GT(d.cpu_big, 0) << id;
    }
    // Products inherit their chip's figures and override the memory.
    const Device x = c.find("xiaomi-14"), s = c.find("snapdragon-8-gen-3");
    EXPECT_EQ(x.chip, "snapdragon-8-gen-3");
    EXPECT_EQ(x.mem_bw_gbs, s.mem_bw_gbs);
    EXPECT_EQ(x.os, "android");
    EXPECT_TRUE(x.is_estimated("int8_tops"));
    EXPECT_EQ(c.find("IPAD-PRO-M4").cpu_big, 3);  // ids compare case-insensitively
}

TEST(PlanCatalog, ErrorsNameTheFileAndEntry) {
    auto msg = [](const std::string& json) {
        try {
            parse_catalog(json, "cat.json");
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    EXPECT_NE(msg("{").find("cat.json: not valid JSON"), std::string::npos);
    const std::string rules = R"("os_rules": {"linux": {"fraction": 0.8}})";
    EXPECT_NE(msg("{" + rules + R"(, "devices": [{"id": "p", "name": "P", "chip": "nope"}]})")
                  .find("device 'p': unknown chip 'nope'"),
              std::string::npos);
    EXPECT_NE(msg("{" + rules + R"(, "chips": [{"id": "c", "name": "C", "os": "linux"}]})")
                  .find("chip 'c': missing number"),
              std::string::npos);
    EXPECT_NE(msg(R"({"os_rules": {"linux": {"fraction": 2}}})").find("fraction"),
              std::string::npos);
    EXPECT_THROW(catalog().find("no-such-phone"), Error);
}

TEST(PlanBudget, OsRulesAndOverrides) {
    const auto& c = catalog();
    const Device x = c.find("xiaomi-14");  // 12 GB, android: half
    EXPECT_EQ(app_budget(x, c).bytes, 6'000'000'000u);
    EXPECT_EQ(app_budget(x, c, {.bytes = 123}).bytes, 123u);
    EXPECT_EQ(app_budget(x, c, {.fraction = 0.25}).bytes, 3'000'000'000u);
    const Device i = c.find("iphone-15-pro");  // 8 GB; entitlement raises it to 2/3
    EXPECT_EQ(app_budget(i, c).bytes, 4'000'000'000u);
    EXPECT_NEAR(app_budget(i, c, {.os = "ios-entitled"}).bytes / 1e9, 5.34, 0.01);
    EXPECT_EQ(parse_bytes("6G"), 6'000'000'000u);
    EXPECT_EQ(parse_bytes("1.5GiB"), 1610612736u);
    EXPECT_EQ(parse_bytes("512 MB"), 512'000'000u);
    EXPECT_THROW(parse_bytes("lots"), Error);
    EXPECT_THROW(parse_bytes("3 parsecs"), Error);
}

TEST(PlanMemory, PresetTensorsMatchSynth) {
    for (const char* type : {"q4_0", "q8_0", "f16", "q4_k_m"}) {
        const Preset& p = *find_preset("qwen2.5-0.5b");
        uint64_t want = 0;
        for (const auto& t : synth_tensor_plan(p, type)) want += t.n_bytes;
        const ModelShape m = shape_from_preset(p, type);
        EXPECT_EQ(m.tensor_bytes(), want) << type;
        EXPECT_EQ(static_cast<int64_t>(m.n_params()), p.n_params()) << type;
    }
}

TEST(PlanMemory, KvCacheAndWeightsMatchTheEngine) {
    DUAN_REQUIRE_TESTDATA("models/qwen2-tiny-q8_0.gguf");
    auto model = Model::load(test::testdata("models/qwen2-tiny-q8_0.gguf"));
    const ModelShape m = shape_from_gguf(model->file());
    EXPECT_EQ(m.tensor_bytes(), model->weight_bytes());
    EXPECT_EQ(m.file_bytes, model->file().file_size());
    for (DType kv : {DType::F16, DType::Q8_0, DType::Q4_0}) {
        ContextOptions o;
        o.n_ctx = 96;
        o.n_seq = 2;
        o.n_threads = 1;
        o.cache_type_k = o.cache_type_v = kv;
        Context ctx(*model, o);
        EXPECT_EQ(kv_cache_bytes(m, run_shape(m, o)), ctx.kv_cache_bytes()) << dtype_name(kv);
    }
    const MemoryPlan p = plan_memory(m, run_shape(m, {}));
    std::set<std::string> names;
    for (const auto& l : p.lines) names.insert(l.name);
    EXPECT_EQ(names,
              (std::set<std::string>{"weights", "kv_cache", "compute", "tokenizer", "runtime"}));
    EXPECT_EQ(p.weights + p.kv_cache + p.compute + p.tokenizer + p.runtime, p.total());
}

// The seed article's Qwen (v1) table: GPTQ Int4 file sizes and peak memory to encode 2048 tokens.
// GPTQ keeps wte and lm_head in 16-bit: the gptq-like layout does the same (docs/PLANNING.md).
TEST(PlanMemory, SeedQwenTableWithin15Percent) {
    struct Row {
        const char* preset;
        double size_gb, mem_gb;
    };
    for (const Row& r :
         {Row{"qwen-1.8b", 1.88, 2.9}, Row{"qwen-7b", 5.86, 8.2}, Row{"qwen-72b", 41.65, 48.0}}) {
        const ModelShape m = shape_from_preset(*find_preset(r.preset), "q4_0", Layout::GptqLike);
        RunShape run;
        run.n_ctx = 2048;
        run.n_ubatch = 2048;  // the seed encoded the 2048-token context in one pass
        const MemoryPlan p = plan_memory(m, run);
        EXPECT_NEAR(m.tensor_bytes() / 1e9 / r.size_gb, 1.0, 0.15) << r.preset;
        EXPECT_NEAR(p.total() / 1e9 / r.mem_gb, 1.0, 0.15) << r.preset;
    }
}

TEST(PlanSpeed, NaiveIsTheSpecSheetAndProfilesRoundTrip) {
    const auto& c = catalog();
    const ModelShape m = shape_from_preset(*find_preset("qwen2.5-7b"), "q4_0");
    RunShape r;
    r.n_ctx = 4096;
    const Device a10 = c.find("a10"), m1 = c.find("m1");
    Profile none;
    const SpeedPlan sa = plan_speed(m, r, a10, none), sm = plan_speed(m, r, m1, none);
    EXPECT_NEAR(sa.naive_decode_tps, a10.mem_bw_gbs * 1e9 / sa.decode_bytes, 1e-6);
    // Naive prefill ratio between two devices is their TOPS ratio.
    EXPECT_NEAR(sa.naive_prefill_tps / sm.naive_prefill_tps, a10.int8_tops / m1.int8_tops, 1e-6);
    EXPECT_GT(sa.decode_bytes, m.tensor_bytes() * 0.9);
    EXPECT_FALSE(sa.calibrated);

    Profile p;
    p.machine = "test";
    p.read_bw_gbs = 50;
    p.nominal_int8_gops = 1000;
    p.rates["q4_0"] = {25, 100};
    p.rates["f16"] = {40, 50};
    p.pool_call_us = 2.5;
    p.elem_ns = 0.75;
    const std::string path =
        (std::filesystem::temp_directory_path() / "duan_test_profile.json").string();
    save_profile(p, path);
    const Profile q = load_profile(path);
    std::filesystem::remove(path);
    EXPECT_DOUBLE_EQ(q.decode_eff(DType::Q4_0), 0.5);
    EXPECT_DOUBLE_EQ(q.prefill_eff(DType::Q4_0), 0.1);
    EXPECT_DOUBLE_EQ(q.decode_eff(DType::BF16), 0.8);  // closest measured float type
    const SpeedPlan cm = plan_speed(m, r, m1, q);
    EXPECT_TRUE(cm.calibrated);
    EXPECT_LT(cm.decode_tps, cm.naive_decode_tps);
    EXPECT_DOUBLE_EQ(q.pool_call_us, 2.5);
    EXPECT_DOUBLE_EQ(q.elem_ns, 0.75);
    // The per-layer overhead adds exactly n_layer × (calls × latency + elements × ns) per token.
    Profile q0 = q;
    q0.pool_call_us = q0.elem_ns = 0;
    const SpeedPlan c0 = plan_speed(m, r, m1, q0);
    const double per_layer =
        kPoolCallsPerLayer * 2.5e-6 + (kElemsPerEmbd * m.n_embd + kElemsPerFf * m.n_ff) * 0.75e-9;
    EXPECT_NEAR(1 / cm.decode_tps - 1 / c0.decode_tps, m.n_layer * per_layer, 1e-12);
    // Deeper contexts decode slower (KV reads and attention compute).
    RunShape deep = r;
    deep.n_ctx = 32768;
    EXPECT_LT(plan_speed(m, deep, m1, q, 16384).decode_tps,
              plan_speed(m, r, m1, q, 512).decode_tps);
    EXPECT_TRUE(load_profile("/nonexistent/duan/profile.json").empty());
}

TEST(PlanFit, FallsBackThenExplains) {
    const ModelShape m = shape_from_preset(*find_preset("qwen2.5-7b"), "q4_0");
    ContextOptions o;
    o.n_ctx = 32768;
    const uint64_t need = plan_memory(m, run_shape(m, o)).total();
    ContextOptions same = o;
    FitResult ok = check_fits(m, same, need);
    EXPECT_TRUE(ok.fits);
    EXPECT_FALSE(ok.adjusted);
    EXPECT_EQ(same.n_ctx, 32768);

    ContextOptions tight = o;  // a little short: the q8_0 KV cache is enough
    FitResult fb = check_fits(m, tight, need - 100'000'000);
    EXPECT_TRUE(fb.adjusted);
    EXPECT_EQ(tight.cache_type_k, DType::Q8_0);
    EXPECT_EQ(tight.n_ctx, 32768);
    EXPECT_LE(fb.plan.total(), need - 100'000'000);

    ContextOptions shorter = o;  // weights + a small context only
    check_fits(m, shorter, m.file_bytes + 400'000'000);
    EXPECT_LT(shorter.n_ctx, 32768);
    EXPECT_GE(shorter.n_ctx, 512);

    ContextOptions none = o;
    try {
        check_fits(m, none, 1'000'000'000);
        FAIL() << "expected an error";
    } catch (const Error& e) {
        const std::string s = e.what();
        for (const char* want : {"qwen2.5-7b", "budget is 1.00 GB", "weights", "kv_cache",
                                 "compute", "tokenizer", "runtime", "tried"})
            EXPECT_NE(s.find(want), std::string::npos) << want << " in:\n" << s;
    }
    ContextOptions strict = o;
    EXPECT_THROW(check_fits(m, strict, need - 1, /*allow_fallback=*/false), Error);
}

TEST(PlanRecommend, PicksTheLargestModelThatFits) {
    const auto& c = catalog();
    RunShape r;
    r.n_ctx = 4096;
    Profile none;
    for (const char* id : {"iphone-15-pro", "xiaomi-14", "h100", "rpi5-8gb"}) {
        const Device d = c.find(id);
        auto rows = recommend(d, c, {}, none, r, 0.0);
        ASSERT_FALSE(rows.empty()) << id;
        for (const auto& row : rows) EXPECT_TRUE(row.fits) << id;
        for (size_t i = 1; i < rows.size(); ++i)
            EXPECT_GE(rows[0].model.n_params(), rows[i].model.n_params()) << id;
    }
    // 8 GB iPhone, 4 GB budget: not a 7B at 4 bits (about 4.5 GB with its KV cache).
    auto rows = recommend(c.find("iphone-15-pro"), c, {}, none, r, 0.0);
    EXPECT_LT(rows[0].model.n_params(), 7'000'000'000u);
    EXPECT_EQ(recommend(c.find("a10"), c, {.bytes = 100'000'000}, none, r).size(), 0u);
}

}  // namespace
}  // namespace duan::plan
