// The real engine under the scheduler: continuous batching over llm::Context must give every
// sequence exactly what it would get alone (greedy), and chat requests use the model's template.
#include <gtest/gtest.h>

#include <thread>

#include "hybrid/local_engine.h"
#include "testdata.h"

using namespace duan;
using namespace duan::hybrid;
using namespace std::chrono_literals;

namespace {

GenRequest greedy(const std::string& prompt, int max_tokens) {
    GenRequest r;
    r.chat = false;
    r.prompt = prompt;
    r.max_tokens = max_tokens;
    r.temperature = 0;
    return r;
}

std::string run(Scheduler& s, const GenRequest& r, GenResult* out = nullptr) {
    auto st = s.submit(r);
    std::string text;
    for (;;) {
        auto ev = st->next(60s);
        if (!ev) {
            ADD_FAILURE() << "timeout";
            return text;
        }
        if (ev->kind == StreamEvent::Text)
            text += ev->text;
        else if (ev->kind == StreamEvent::Done) {
            if (out) *out = ev->result;
            return text;
        } else {
            ADD_FAILURE() << ev->error->what();
            return text;
        }
    }
}

}  // namespace

TEST(ServeLocal, BatchedEqualsAloneGreedy) {
    DUAN_REQUIRE_TESTDATA("models/stories260K.gguf");
    auto model = Model::load(test::testdata("models/stories260K.gguf"));
    LocalEngineOptions lo;
    lo.n_slots = 4;
    lo.n_ctx = 128;
    lo.n_threads = 1;
    lo.prefill_chunk = 3;  // several steps of prefill, interleaved with other slots' decoding
    Scheduler sch(std::make_unique<LocalEngine>(*model, lo));

    GenResult r;
    std::string once = run(sch, greedy("Once upon a time", 12), &r);
    EXPECT_EQ(once.rfind(", there was a little girl", 0), 0u) << once;
    EXPECT_EQ(r.completion_tokens, 12);
    EXPECT_EQ(r.prompt_tokens, 5);  // BOS + 4

    const std::vector<std::string> prompts = {"Once upon a time", "The cat", "Lily and Ben went",
                                              "One day, a big dog", "Tom had a red ball"};
    std::vector<std::string> alone;
    for (const auto& p : prompts) alone.push_back(run(sch, greedy(p, 20)));
    std::vector<std::string> together(prompts.size());
    std::vector<std::thread> ts;
    for (size_t i = 0; i < prompts.size(); ++i)
        ts.emplace_back([&, i] { together[i] = run(sch, greedy(prompts[i], 20)); });
    for (auto& t : ts) t.join();
    for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(together[i], alone[i]) << prompts[i];
    EXPECT_GT(sch.stats().max_batch_seqs, 1);
}

TEST(ServeLocal, SeededSamplingRepeats) {
    DUAN_REQUIRE_TESTDATA("models/stories260K.gguf");
    auto model = Model::load(test::testdata("models/stories260K.gguf"));
    LocalEngineOptions lo;
    lo.n_slots = 2;
    lo.n_ctx = 64;
    lo.n_threads = 1;
    Scheduler sch(std::make_unique<LocalEngine>(*model, lo));
    GenRequest r = greedy("Once upon a time", 16);
    r.temperature = 0.9f;
    r.seed = 1234;
    EXPECT_EQ(run(sch, r), run(sch, r));
    // Context cap: max_tokens beyond the context ends with "length" at the context's end.
    GenResult res;
    run(sch, greedy("Once upon a time", 1000), &res);
    EXPECT_EQ(res.finish_reason == "length" || res.finish_reason == "stop", true);
    EXPECT_LE(res.prompt_tokens + res.completion_tokens, 64);
}

TEST(ServeLocal, ChatUsesTheModelTemplate) {
    DUAN_REQUIRE_TESTDATA("models/qwen2-tiny-q8_0.gguf");
    auto model = Model::load(test::testdata("models/qwen2-tiny-q8_0.gguf"));
    LocalEngineOptions lo;
    lo.n_slots = 2;
    lo.n_ctx = 128;
    lo.n_threads = 1;
    auto eng = std::make_unique<LocalEngine>(*model, lo);
    GenRequest r;
    r.messages = {{"user", "Hello"}};
    r.max_tokens = 4;
    r.temperature = 0;
    std::string prompt = eng->render_chat(r);
    EXPECT_NE(prompt.find("<|im_start|>user\nHello<|im_end|>"), std::string::npos) << prompt;
    EXPECT_EQ(prompt.substr(prompt.size() - 22), "<|im_start|>assistant\n");
    // The template's control tokens become single tokens.
    auto toks = eng->tokenize(r);
    EXPECT_LT(toks.size(), prompt.size() / 2);
    Scheduler sch(std::move(eng));
    GenResult res;
    run(sch, r, &res);
    EXPECT_GE(res.completion_tokens, 0);
    EXPECT_LE(res.completion_tokens, 4);
}
