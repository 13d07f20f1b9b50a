// Continuous batching scheduler on the deterministic fake engine: limits, stop strings, queueing
// with back-pressure, cancellation, failures, shutdown, and many concurrent clients.
#include <gtest/gtest.h>

#include <thread>

#include "hybrid/fake_engine.h"
#include "hybrid/openai.h"
#include "wait_until.h"

using namespace duan::hybrid;
using namespace std::chrono_literals;

namespace {

GenRequest completion(const std::string& prompt, int max_tokens = 8) {
    GenRequest r;
    r.chat = false;
    r.prompt = prompt;
    r.max_tokens = max_tokens;
    return r;
}

struct Collected {
    std::string text;
    std::optional<GenResult> result;
    std::optional<ApiError> error;
};

Collected collect(GenStream& s, std::chrono::milliseconds timeout = 10s) {
    Collected c;
    for (;;) {
        auto ev = s.next(timeout);
        if (!ev) {
            ADD_FAILURE() << "stream timed out";
            return c;
        }
        if (ev->kind == StreamEvent::Text)
            c.text += ev->text;
        else if (ev->kind == StreamEvent::Done) {
            c.result = ev->result;
            return c;
        } else {
            c.error = ev->error;
            return c;
        }
    }
}

std::string expected_words(int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += FakeEngine::word(i);
    return s;
}

struct Fixture {
    FakeEngine* eng;
    std::unique_ptr<Scheduler> sch;
    explicit Fixture(FakeEngineOptions fo, SchedulerOptions so = {}) {
        auto e = std::make_unique<FakeEngine>(fo);
        eng = e.get();
        sch = std::make_unique<Scheduler>(std::move(e), so);
    }
};

}  // namespace

TEST(ServeScheduler, GeneratesUntilMaxTokens) {
    Fixture f({});
    auto c = collect(*f.sch->submit(completion("one two three", 5)));
    ASSERT_TRUE(c.result);
    EXPECT_EQ(c.text, expected_words(5));
    EXPECT_EQ(c.result->finish_reason, "length");
    EXPECT_EQ(c.result->completion_tokens, 5);
    EXPECT_EQ(c.result->prompt_tokens, 4);  // BOS + 3 words
}

TEST(ServeScheduler, EndOfGenerationAndStopStrings) {
    FakeEngineOptions fo;
    fo.eog_after = 3;
    Fixture f(fo);
    auto c = collect(*f.sch->submit(completion("x", 100)));
    EXPECT_EQ(c.text, expected_words(3));
    EXPECT_EQ(c.result->finish_reason, "stop");

    Fixture g({});
    GenRequest r = completion("x", 100);
    r.stop = {"fox"};
    c = collect(*g.sch->submit(r));
    EXPECT_EQ(c.text, " the quick brown ");
    EXPECT_EQ(c.result->finish_reason, "stop");
}

TEST(ServeScheduler, ContextLimits) {
    FakeEngineOptions fo;
    fo.n_ctx = 10;
    Fixture f(fo);
    // 1 BOS + 12 words >= 10 positions: refused up front with OpenAI's code.
    try {
        f.sch->submit(completion("a b c d e f g h i j k l"));
        FAIL();
    } catch (const ApiError& e) {
        EXPECT_EQ(e.status, 400);
        EXPECT_EQ(e.code, "context_length_exceeded");
    }
    // max_tokens beyond the room left is capped: 4 prompt tokens leave 6.
    auto c = collect(*f.sch->submit(completion("a b c", 1000)));
    EXPECT_EQ(c.result->completion_tokens, 6);
    EXPECT_EQ(c.result->finish_reason, "length");
}

TEST(ServeScheduler, QueueFullGives429WithRetryAfter) {
    FakeEngineOptions fo;
    fo.n_slots = 1;
    fo.step_delay = 20ms;
    SchedulerOptions so;
    so.max_queue = 1;
    Fixture f(fo, so);
    auto a = f.sch->submit(completion("x", 50));
    duan::test::wait_until([&] { return f.eng->begun.load() >= 1; }, 5s);
    auto b = f.sch->submit(completion("x", 2));  // queued
    try {
        f.sch->submit(completion("x", 2));
        FAIL();
    } catch (const ApiError& e) {
        EXPECT_EQ(e.status, 429);
        EXPECT_GT(e.retry_after_s, 0);
    }
    a->cancel();
    auto cb = collect(*b);
    EXPECT_TRUE(cb.result);
    auto ca = collect(*a);
    ASSERT_TRUE(ca.error);
    EXPECT_EQ(ca.error->code, "cancelled");
}

TEST(ServeScheduler, CancelFreesTheSlot) {
    FakeEngineOptions fo;
    fo.n_slots = 1;
    fo.step_delay = 5ms;
    Fixture f(fo);
    auto a = f.sch->submit(completion("x", 100000 / 1000));
    ASSERT_TRUE(a->next(5s));
    a->cancel();
    auto c = collect(*f.sch->submit(completion("y", 3)));
    EXPECT_EQ(c.text, expected_words(3));
    duan::test::wait_until([&] { return f.eng->ended.load() >= 2; }, 10s);
    EXPECT_EQ(f.eng->begun.load(), f.eng->ended.load());
}

TEST(ServeScheduler, EngineFailureFailsTheBatchOnly) {
    Fixture f({});
    f.eng->fail_steps = 1;
    auto c = collect(*f.sch->submit(completion("x", 3)));
    ASSERT_TRUE(c.error);
    EXPECT_EQ(c.error->code, "local_failure");
    auto d = collect(*f.sch->submit(completion("x", 3)));
    EXPECT_TRUE(d.result);
}

TEST(ServeScheduler, ManyClientsShareBatchedSteps) {
    FakeEngineOptions fo;
    fo.n_slots = 4;
    fo.step_delay = 2ms;
    SchedulerOptions so;
    so.max_queue = 64;
    Fixture f(fo, so);
    constexpr int kClients = 24;
    std::vector<std::thread> ts;
    std::vector<Collected> got(kClients);
    for (int i = 0; i < kClients; ++i)
        ts.emplace_back([&, i] {
            got[i] = collect(*f.sch->submit(completion("p " + std::to_string(i), 3 + i % 5)));
        });
    for (auto& t : ts) t.join();
    for (int i = 0; i < kClients; ++i) {
        ASSERT_TRUE(got[i].result) << i;
        EXPECT_EQ(got[i].text, expected_words(3 + i % 5)) << i;  // exactly once, complete
        EXPECT_EQ(got[i].result->completion_tokens, 3 + i % 5);
    }
    EXPECT_GT(f.sch->stats().max_batch_seqs, 1);
    EXPECT_LE(f.sch->stats().max_batch_seqs, 4);
    EXPECT_EQ(f.eng->begun.load(), kClients);
}

TEST(ServeScheduler, ShutdownDrainsOrFails) {
    FakeEngineOptions fo;
    fo.n_slots = 1;
    fo.step_delay = 2ms;
    {
        Fixture f(fo);
        auto a = f.sch->submit(completion("x", 10));
        auto b = f.sch->submit(completion("x", 10));
        f.sch->shutdown(true);
        EXPECT_TRUE(collect(*a).result);
        EXPECT_TRUE(collect(*b).result);
        EXPECT_THROW(f.sch->submit(completion("x")), ApiError);
    }
    {
        Fixture f(fo);
        auto a = f.sch->submit(completion("x", 100000 / 1000));
        auto b = f.sch->submit(completion("x", 10));
        f.sch->shutdown(false);
        auto ca = collect(*a), cb = collect(*b);
        EXPECT_TRUE(ca.error || ca.result);
        ASSERT_TRUE(cb.error);
        EXPECT_EQ(cb.error->status, 503);
    }
}
