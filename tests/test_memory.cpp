// Weights are used in place from the mmap: loading copies nothing the kernels can read directly,
// so resident memory after load stays near (at most) the file size, not twice it.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "llm/context.h"
#include "testdata.h"

namespace duan {
namespace {

// Resident set size of this process in bytes (VmRSS from /proc/self/status).
size_t rss_bytes() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
    return 0;
}

TEST(Memory, WeightsPointIntoTheMapping) {
    DUAN_REQUIRE_TESTDATA("models/qwen2-tiny-q4_0.gguf");
    for (const char* name : {"models/qwen2-tiny-q4_0.gguf", "models/llama-tiny-f16.gguf"}) {
        auto m = Model::load(test::testdata(name));
        const uint8_t* lo = m->file().base();
        const uint8_t* hi = lo + m->file().file_size();
        auto inside = [&](const void* p) {
            auto b = static_cast<const uint8_t*>(p);
            return b >= lo && b < hi;
        };
        const auto& w = m->weights();
        EXPECT_TRUE(inside(w.tok_embd.data)) << name;
        EXPECT_TRUE(inside(w.output.data)) << name;
        EXPECT_TRUE(inside(w.output_norm)) << name;
        for (const auto& l : w.layers) {
            EXPECT_TRUE(inside(l.wq.data) && inside(l.wk.data) && inside(l.wv.data) &&
                        inside(l.wo.data) && inside(l.w_gate.data) && inside(l.w_up.data) &&
                        inside(l.w_down.data) && inside(l.attn_norm) && inside(l.ffn_norm))
                << name;
        }
    }
}

TEST(Memory, ResidentAfterLoadAndEvalStaysNearFileSize) {
    DUAN_REQUIRE_TESTDATA("models/llama-tiny-f32.gguf");
    const std::string path = test::testdata("models/llama-tiny-f32.gguf");
    const size_t before = rss_bytes();
    auto m = Model::load(path);
    const size_t after_load = rss_bytes();
    const size_t file = m->file().file_size();
    // Loading parses the header and the tokenizer; it must not touch (copy) the weights.
    EXPECT_LT(after_load - before, file / 2) << "load grew RSS by " << (after_load - before);
    // Evaluating touches every weight page once: RSS grows by about the file size, plus the KV
    // cache (2 layers × 64 positions × 128 × 2 B × 2, tiny) and scratch — never by twice the file.
    Context ctx(*m, {.n_ctx = 64, .n_threads = 1});
    std::vector<BatchToken> b;
    for (int i = 0; i < 8; ++i) b.push_back({i + 1, i, 0, i == 7});
    ctx.decode(b);
    const size_t after_eval = rss_bytes();
    EXPECT_LT(after_eval - before, file + file / 4 + (8u << 20))
        << "RSS grew by " << (after_eval - before) << " for a " << file << "-byte file";
}

}  // namespace
}  // namespace duan
