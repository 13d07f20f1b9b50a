// duan synth: the tensor table matches the preset (and llama.cpp's type rules), and synthesized
// files of every architecture load and decode in duan.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "format/gguf.h"
#include "llm/context.h"
#include "llm/model.h"
#include "llm/presets.h"
#include "llm/synth.h"
#include "testdata.h"

namespace duan {
namespace {

std::string tmp_path(const std::string& name) {
    return (std::filesystem::temp_directory_path() /
            ("duan_test_synth_" + std::to_string(::getpid()) + "_" + name))
        .string();
}

// Small shapes of each architecture (not real models): qwen3's head_dim * n_head != n_embd.
Preset tiny(const char* arch) {
    const std::string a = arch;
    Preset p{"tiny", arch, "qwen2",      320,          256,          2,        4,     2,     64,
             512,    256,  a != "llama", a == "qwen2", a == "qwen3", 10000.0f, 1e-6f, "test"};
    if (a == "qwen3") p.head_dim = 128;
    return p;
}

int64_t elements(const std::vector<int64_t>& ne) {
    int64_t n = 1;
    for (int64_t d : ne) n *= d;
    return n;
}

const SynthTensor* find(const std::vector<SynthTensor>& plan, const std::string& name) {
    for (const auto& t : plan)
        if (t.name == name) return &t;
    return nullptr;
}

TEST(Synth, PlanMatchesEveryPreset) {
    for (const auto& p : presets()) {
        for (const char* type : {"f16", "q4_0", "q4_k_m"}) {
            const auto plan = synth_tensor_plan(p, type);
            int64_t n = 0;
            for (const auto& t : plan) n += elements(t.ne);
            EXPECT_EQ(n, p.n_params()) << p.name << " " << type;
            const size_t per_layer = 9 + (p.qkv_bias ? 3 : 0) + (p.qk_norm ? 2 : 0);
            EXPECT_EQ(plan.size(), 2 + p.n_layer * per_layer + (p.tied_output ? 0 : 1)) << p.name;
        }
    }
}

// Sizes llama-bench reports for the real LLaMA 2 7B files (6.74 B params).
TEST(Synth, Llama2SizesMatchRealFiles) {
    const Preset* p = find_preset("llama-2-7b");
    ASSERT_NE(p, nullptr);
    EXPECT_NEAR(static_cast<double>(p->n_params()) / 1e9, 6.74, 0.005);
    auto gib = [&](const char* type) {
        uint64_t b = 0;
        for (const auto& t : synth_tensor_plan(*p, type)) b += t.n_bytes;
        return static_cast<double>(b) / (1 << 30);
    };
    EXPECT_NEAR(gib("q4_0"), 3.56, 0.01);
    EXPECT_NEAR(gib("q8_0"), 6.67, 0.01);
    EXPECT_NEAR(gib("f16"), 12.55, 0.01);
    EXPECT_NEAR(gib("q4_k_m"), 3.80, 0.01);
}

// llama.cpp's Q4_K_M rules on Qwen2.5-0.5B (n_embd 896 is not a multiple of 256).
TEST(Synth, Q4KMRulesQwen05B) {
    const Preset* p = find_preset("qwen2.5-0.5b");
    ASSERT_NE(p, nullptr);
    const auto plan = synth_tensor_plan(*p, "q4_k_m");
    auto type = [&](const std::string& n) {
        const SynthTensor* t = find(plan, n);
        EXPECT_NE(t, nullptr) << n;
        return t ? t->type : DType::F32;
    };
    EXPECT_EQ(type("token_embd.weight"), DType::Q8_0);      // tied output: Q6_K → Q8_0
    EXPECT_EQ(type("blk.0.attn_q.weight"), DType::Q5_0);    // Q4_K → Q5_0 (896 columns)
    EXPECT_EQ(type("blk.0.attn_v.weight"), DType::Q8_0);    // use_more_bits: Q6_K → Q8_0
    EXPECT_EQ(type("blk.3.attn_v.weight"), DType::Q5_0);    // Q4_K → Q5_0
    EXPECT_EQ(type("blk.0.ffn_down.weight"), DType::Q6_K);  // 4864 columns: no fallback
    EXPECT_EQ(type("blk.3.ffn_down.weight"), DType::Q4_K);
    EXPECT_EQ(type("blk.5.ffn_down.weight"), DType::Q6_K);   // (5 - 3) % 3 == 2
    EXPECT_EQ(type("blk.23.ffn_down.weight"), DType::Q6_K);  // last eighth
    EXPECT_EQ(type("blk.0.attn_norm.weight"), DType::F32);
    EXPECT_EQ(type("blk.0.attn_q.bias"), DType::F32);
    // Q4_0: the tied embedding gets the output rule too (Q6_K, then Q8_0 by the fallback).
    EXPECT_EQ(find(synth_tensor_plan(*p, "q4_0"), "token_embd.weight")->type, DType::Q8_0);
    EXPECT_EQ(find(synth_tensor_plan(*p, "q4_0", /*pure=*/true), "token_embd.weight")->type,
              DType::Q4_0);
    EXPECT_THROW(synth_tensor_plan(*p, "q7_x"), Error);
}

// Writes, reloads: the file's tensor table is the plan, and the model decodes to finite logits.
void check_roundtrip(const Preset& p, const std::string& type) {
    const std::string path = tmp_path(std::string(p.arch) + "_" + type + ".gguf");
    SynthOptions o;
    o.type = type;
    const SynthStats st = synthesize(p, path, o);
    EXPECT_EQ(st.n_params, p.n_params());
    {
        auto model = Model::load(path);
        const auto plan = synth_tensor_plan(p, type);
        const auto& ts = model->file().tensors();
        ASSERT_EQ(ts.size(), plan.size());
        for (size_t i = 0; i < ts.size(); ++i) {
            EXPECT_EQ(ts[i].name, plan[i].name);
            EXPECT_EQ(ts[i].type, plan[i].type) << ts[i].name;
            EXPECT_EQ(ts[i].ne, plan[i].ne) << ts[i].name;
        }
        EXPECT_EQ(model->hparams().head_dim, p.head_dim);
        EXPECT_EQ(model->tokenizer().n_vocab(), p.n_vocab);
        ContextOptions co;
        co.n_ctx = 16;
        co.n_threads = 2;
        Context ctx(*model, co);
        const auto& logits = ctx.decode({{1, 0, 0, false}, {2, 1, 0, true}});
        ASSERT_EQ(logits.size(), static_cast<size_t>(p.n_vocab));
        for (float x : logits) ASSERT_TRUE(std::isfinite(x));
        const auto& l2 = ctx.decode({{3, 2, 0, true}});
        for (float x : l2) ASSERT_TRUE(std::isfinite(x));
    }
    std::filesystem::remove(path);
}

TEST(Synth, LoadsAndDecodesLlama) {
    check_roundtrip(tiny("llama"), "q4_k_m");
}
TEST(Synth, LoadsAndDecodesQwen2) {
    check_roundtrip(tiny("qwen2"), "q8_0");
}
TEST(Synth, LoadsAndDecodesQwen3) {
    check_roundtrip(tiny("qwen3"), "q4_0");
}
TEST(Synth, LoadsAndDecodesFloatTypes) {
    check_roundtrip(tiny("qwen2"), "f16");
    check_roundtrip(tiny("llama"), "bf16");
}

TEST(Synth, BytesDoNotDependOnThreads) {
    const Preset p = tiny("qwen2");
    SynthOptions o;
    o.type = "q4_k_m";
    auto bytes = [&](int threads) {
        o.n_threads = threads;
        const std::string path = tmp_path("threads" + std::to_string(threads) + ".gguf");
        synthesize(p, path, o);
        std::ifstream f(path, std::ios::binary);
        std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        std::filesystem::remove(path);
        return s;
    };
    EXPECT_EQ(bytes(1), bytes(3));
}

// --vocab: the real tokenizer is copied and padded with UNUSED "[PAD{i}]" tokens.
TEST(Synth, CopiesAndPadsVocab) {
    DUAN_REQUIRE_TESTDATA("vocab/ggml-vocab-qwen2.gguf");
    const std::string vocab = test::testdata("vocab/ggml-vocab-qwen2.gguf");
    const auto vf = gguf::File::open(vocab);
    const int64_t n_have =
        static_cast<int64_t>(vf->meta().get_strings("tokenizer.ggml.tokens")->size());
    auto ref = Tokenizer::from_gguf(vf->meta(), vocab);

    Preset p = tiny("qwen2");
    p.n_embd = 64;  // keep token_embd small: ~150k rows
    p.head_dim = 16;
    p.n_ff = 128;
    p.n_vocab = n_have + 5;
    const std::string path = tmp_path("vocab.gguf");
    SynthOptions o;
    o.type = "q8_0";
    o.vocab_path = vocab;
    synthesize(p, path, o);
    {
        auto model = Model::load(path);
        const Tokenizer& tok = model->tokenizer();
        EXPECT_EQ(tok.n_vocab(), p.n_vocab);
        EXPECT_EQ(tok.token_text(static_cast<TokenId>(n_have)),
                  "[PAD" + std::to_string(n_have) + "]");
        EXPECT_EQ(tok.token_type(static_cast<TokenId>(n_have + 4)), TokenType::UNUSED);
        const std::string text = "Hello world, 在客户端上跑大模型 <|im_start|>";
        EXPECT_EQ(tok.encode(text, false, true), ref->encode(text, false, true));
        EXPECT_EQ(tok.eos(), ref->eos());
    }
    std::filesystem::remove(path);
    p.n_vocab = n_have - 1;  // smaller than the vocabulary: refused
    EXPECT_THROW(synthesize(p, path, o), Error);
}

TEST(Synth, GeneratedVocabTokenizes) {
    const Preset p = tiny("qwen2");
    gguf::Metadata meta;
    SynthOptions o;
    synth_metadata(p, o, meta);
    auto tok = Tokenizer::from_gguf(meta, "generated");
    EXPECT_EQ(tok->n_vocab(), p.n_vocab);
    const auto ids = tok->encode("the cat", false, false);
    EXPECT_EQ(tok->decode(ids), "the cat");
    EXPECT_LT(ids.size(), 7u);  // merges apply
    EXPECT_TRUE(tok->is_eog(tok->eos()));
}

}  // namespace
}  // namespace duan
