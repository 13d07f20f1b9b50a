// duan quantize: per-tensor type mixes and bytes against the reference quantizer's files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/error.h"
#include "format/gguf.h"
#include "llm/quantize_model.h"
#include "testdata.h"

namespace duan {
namespace {

std::string tmp_path(const std::string& name) {
    return (std::filesystem::temp_directory_path() /
            ("duan_q_" + std::to_string(::getpid()) + "_" + name))
        .string();
}

std::vector<char> slurp(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// Quantizes <arch>-tiny-f32 to `type` and checks every tensor's type and bytes against the
// reference's <arch>-tiny-<type>.gguf, then the whole file.
void check_against_reference(const std::string& arch, const std::string& type) {
    const std::string src = test::testdata("models/" + arch + "-tiny-f32.gguf");
    const std::string ref = test::testdata("models/" + arch + "-tiny-" + type + ".gguf");
    if (!std::filesystem::exists(src) || !std::filesystem::exists(ref))
        GTEST_SKIP() << "test data not found: " << ref;
    const std::string out = tmp_path(arch + "_" + type + ".gguf");
    QuantizeOptions o;
    o.ftype = *file_type_from_name(type);
    o.n_threads = 2;
    quantize_model(src, out, o);

    auto a = gguf::File::open(out);
    auto b = gguf::File::open(ref);
    ASSERT_EQ(a->tensors().size(), b->tensors().size());
    for (size_t i = 0; i < a->tensors().size(); ++i) {
        const auto& ta = a->tensors()[i];
        const auto& tb = b->tensors()[i];
        ASSERT_EQ(ta.name, tb.name) << "tensor order differs at " << i;
        EXPECT_EQ(dtype_name(ta.type), std::string(dtype_name(tb.type))) << type << " " << ta.name;
        if (ta.type != tb.type || ta.n_bytes != tb.n_bytes) continue;
        EXPECT_EQ(0, std::memcmp(ta.data, tb.data, ta.n_bytes)) << type << " " << ta.name;
    }
    EXPECT_EQ(a->meta().get_u32("general.file_type"), b->meta().get_u32("general.file_type"));
    EXPECT_EQ(a->meta().get_u32("general.quantization_version"), 2u);
    // Whole file: same metadata order, same header, same padding.
    EXPECT_TRUE(slurp(out) == slurp(ref)) << type << ": files differ (tensors matched above)";
    std::filesystem::remove(out);
}

TEST(Quantize, FileTypeNames) {
    EXPECT_EQ(file_type_from_name("q4_k_m"), FileType::Q4_K_M);
    EXPECT_EQ(file_type_from_name("BF16"), FileType::MOSTLY_BF16);
    EXPECT_EQ(file_type_base(FileType::Q3_K_L), DType::Q3_K);
    EXPECT_FALSE(file_type_from_name("q4_k_x").has_value());
    EXPECT_STREQ(file_type_name(FileType::Q5_K_S), "Q5_K_S");
}

TEST(Quantize, LlamaMatchesReferenceLegacy) {
    for (const char* t : {"q8_0", "q4_0", "q4_1", "q5_0", "f16", "bf16"})
        check_against_reference("llama", t);
}

TEST(Quantize, LlamaMatchesReferenceKQuants) {
    for (const char* t : {"q2_k", "q3_k_m", "q4_k_m", "q5_k_m", "q6_k"})
        check_against_reference("llama", t);
}

TEST(Quantize, QwenMatchesReference) {
    for (const char* arch : {"qwen2", "qwen3"})
        for (const char* t : {"q8_0", "q4_0", "q4_k_m", "f16"}) check_against_reference(arch, t);
}

// stories260K: rows of 64 and 172 elements. K-quants fall back per tensor; 172 is not a multiple
// of 32, so ffn_down goes to F16 — the reference refuses this model, we quantize the rest.
TEST(Quantize, Stories260KFallsBackPerTensor) {
    DUAN_REQUIRE_TESTDATA("models/stories260K.gguf");
    const std::string src = test::testdata("models/stories260K.gguf");
    auto in = gguf::File::open(src);
    QuantizeOptions o;
    o.ftype = FileType::Q4_K_M;
    auto plan = plan_quantization(*in, o);
    int n_fallback = 0;
    for (const auto& p : plan) {
        n_fallback += !p.note.empty();
        if (p.name.find("ffn_down") != std::string::npos) {
            EXPECT_EQ(p.to, DType::F16) << p.name;
        } else if (p.name.find("attn_q.weight") != std::string::npos) {
            EXPECT_EQ(p.to, DType::Q5_0) << p.name;  // Q4_K needs 256 columns
        } else if (p.name == "output.weight" || p.name == "token_embd.weight") {
            EXPECT_EQ(p.to, p.name == "output.weight" ? DType::Q8_0 : DType::Q5_0);
        }
    }
    EXPECT_GT(n_fallback, 0);

    std::vector<std::string> lines;
    o.log = [&](const std::string& l) { lines.push_back(l); };
    o.ftype = FileType::Q4_0;
    o.n_threads = 2;
    const std::string out = tmp_path("stories_q4_0.gguf");
    auto r = quantize_model(src, out, o);
    EXPECT_EQ(r.n_fallback, 6);  // five ffn_down (-> F16) and output (Q6_K -> Q8_0)
    bool logged = false;
    for (const auto& l : lines) logged |= l.find("falling back to f16") != std::string::npos;
    EXPECT_TRUE(logged);
    auto q = gguf::File::open(out);
    EXPECT_EQ(q->find_tensor("blk.0.ffn_down.weight")->type, DType::F16);
    EXPECT_EQ(q->find_tensor("blk.0.ffn_up.weight")->type, DType::Q4_0);
    EXPECT_EQ(q->find_tensor("output.weight")->type, DType::Q8_0);
    std::filesystem::remove(out);
}

TEST(Quantize, RefusesRequantizeAndReportsTensor) {
    DUAN_REQUIRE_TESTDATA("models/llama-tiny-q4_0.gguf");
    QuantizeOptions o;
    o.ftype = FileType::Q8_0;
    const std::string out = tmp_path("requant.gguf");
    try {
        quantize_model(test::testdata("models/llama-tiny-q4_0.gguf"), out, o);
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("--allow-requantize"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(out));
    // From F16 is a conversion, not a requantization.
    o.ftype = FileType::Q4_0;
    quantize_model(test::testdata("models/llama-tiny-f16.gguf"), out, o);
    EXPECT_EQ(gguf::File::open(out)->find_tensor("blk.0.attn_q.weight")->type, DType::Q4_0);
    std::filesystem::remove(out);
}

}  // namespace
}  // namespace duan
