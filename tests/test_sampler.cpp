// Sampler filters on small hand-made logits, determinism, and StopMatcher streaming behaviour.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>
#include <vector>

#include "core/error.h"
#include "llm/sampler.h"

namespace duan {
namespace {

// Only the filter under test: everything else off.
SamplingParams plain(float temperature = 1.0f) {
    SamplingParams p;
    p.temperature = temperature;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 1234;
    return p;
}

// Logits whose softmax is exactly `probs`.
std::vector<float> logits_of(const std::vector<float>& probs) {
    std::vector<float> l;
    for (float p : probs) l.push_back(std::log(p));
    return l;
}

// Deterministic pseudo-random logits (no <random> distributions: portable).
std::vector<float> noisy_logits(int n, uint32_t state) {
    std::vector<float> l(n);
    for (int i = 0; i < n; ++i) {
        state = state * 1664525u + 1013904223u;
        l[i] = static_cast<float>(state >> 8) / float(1 << 24) * 8.0f - 4.0f;
    }
    return l;
}

// The set of ids a sampler produces over many draws.
std::set<TokenId> support(Sampler& s, const std::vector<float>& logits, int draws = 2000) {
    std::set<TokenId> ids;
    for (int i = 0; i < draws; ++i) ids.insert(s.sample(logits.data()));
    return ids;
}

std::vector<TokenId> run(Sampler& s, const std::vector<float>& logits, int n) {
    std::vector<TokenId> out;
    for (int i = 0; i < n; ++i) {
        TokenId t = s.sample(logits.data());
        s.accept(t);
        out.push_back(t);
    }
    return out;
}

TEST(Sampler, GreedyPicksArgmaxLowestIdOnTies) {
    std::vector<float> l = {0.1f, 3.0f, -2.0f, 3.0f, 2.9f};
    Sampler s(plain(0.0f), 5);
    EXPECT_EQ(s.sample(l.data()), 1);
    SamplingParams p = plain(-1.0f);
    p.seed = kRandomSeed;  // greedy does not depend on the seed
    Sampler s2(p, 5);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(s2.sample(l.data()), 1);
}

TEST(Sampler, GreedyIgnoresNaN) {
    std::vector<float> l = {NAN, 1.0f, NAN, 2.0f};
    Sampler s(plain(0.0f), 4);
    EXPECT_EQ(s.sample(l.data()), 3);
    SamplingParams p;  // default chain must not crash either
    p.seed = 7;
    Sampler s2(p, 4);
    TokenId t = s2.sample(l.data());
    EXPECT_TRUE(t == 1 || t == 3);
}

TEST(Sampler, SameSeedSameSequenceDifferentSeedDifferent) {
    auto l = noisy_logits(1000, 99);
    SamplingParams p;  // defaults: penalties off, top-k 40, top-p .95, min-p .05, temp .8
    p.temperature = 1.5f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.1f;
    p.seed = 42;
    Sampler a(p, 1000), b(p, 1000);
    auto sa = run(a, l, 200);
    EXPECT_EQ(sa, run(b, l, 200));
    p.seed = 43;
    Sampler c(p, 1000);
    EXPECT_NE(sa, run(c, l, 200));
    a.reset();  // restarts RNG and penalty history
    EXPECT_EQ(sa, run(a, l, 200));
}

TEST(Sampler, PortableSequenceForFixedSeed) {
    // mt19937_64's output is fixed by the standard and the draw uses only its bits, so this
    // sequence must be the same with every compiler and standard library.
    std::vector<float> l = logits_of({0.25f, 0.25f, 0.25f, 0.25f});
    Sampler s(plain(), 4);
    std::vector<TokenId> got;
    for (int i = 0; i < 12; ++i) got.push_back(s.sample(l.data()));
    // Expected from mt19937_64(1234): token = floor(4 * (x >> 11) / 2^53).
    std::mt19937_64 ref(1234);
    std::vector<TokenId> want;
    for (int i = 0; i < 12; ++i) want.push_back(static_cast<TokenId>((ref() >> 11) >> 51));
    EXPECT_EQ(got, want);
}

TEST(Sampler, RandomSeedIsReportedAndReusable) {
    auto l = noisy_logits(500, 5);
    SamplingParams p = plain(1.0f);
    p.seed = kRandomSeed;
    Sampler a(p, 500);
    EXPECT_FALSE(is_random_seed(a.seed()));
    auto sa = run(a, l, 50);
    p.seed = a.seed();
    Sampler b(p, 500);
    EXPECT_EQ(sa, run(b, l, 50));
}

TEST(Sampler, TopK1EqualsGreedy) {
    auto l = noisy_logits(3000, 17);
    Sampler g(plain(0.0f), 3000);
    const TokenId want = g.sample(l.data());
    SamplingParams p = plain(2.0f);
    p.top_k = 1;
    for (uint64_t seed = 0; seed < 20; ++seed) {
        p.seed = seed;
        Sampler s(p, 3000);
        EXPECT_EQ(s.sample(l.data()), want);
    }
}

TEST(Sampler, TopKKeepsKBest) {
    std::vector<float> l = {1.0f, 5.0f, 4.0f, 0.0f, 4.5f, -1.0f};
    SamplingParams p = plain(5.0f);  // hot: every kept token shows up
    p.top_k = 3;
    Sampler s(p, 6);
    EXPECT_EQ(support(s, l), (std::set<TokenId>{1, 2, 4}));
}

TEST(Sampler, TopPKeepsMinimalPrefix) {
    auto l = logits_of({0.05f, 0.5f, 0.15f, 0.3f});  // sorted: 1 (.5), 3 (.3), 2 (.15), 0 (.05)
    SamplingParams p = plain();
    p.top_p = 0.45f;
    Sampler s1(p, 4);
    EXPECT_EQ(support(s1, l), (std::set<TokenId>{1}));
    p.top_p = 0.75f;
    Sampler s2(p, 4);
    EXPECT_EQ(support(s2, l), (std::set<TokenId>{1, 3}));
    p.top_p = 0.85f;
    Sampler s3(p, 4);
    EXPECT_EQ(support(s3, l), (std::set<TokenId>{1, 2, 3}));
    p.top_p = 1.0f;
    Sampler s4(p, 4);
    EXPECT_EQ(support(s4, l), (std::set<TokenId>{0, 1, 2, 3}));
}

TEST(Sampler, TopPOnFlatVocabUsesLowestIds) {
    // 600 equal logits: top-p 0.5 needs 300 tokens; ties are broken by id, so exactly ids
    // 0..299 remain.
    std::vector<float> l(600, 0.0f);
    SamplingParams p = plain();
    p.top_p = 0.5f;
    Sampler s(p, 600);
    auto ids = support(s, l, 1500);
    EXPECT_EQ(*ids.rbegin(), 299);
    EXPECT_GT(ids.size(), 240u);
}

TEST(Sampler, TopPWholeVocabMatchesBruteForce) {
    // The unsorted (bucketed) top-p path must keep exactly the minimal sorted prefix.
    const int n = 2000;
    auto l = noisy_logits(n, 77);
    for (float& x : l) x *= 2.0f;
    std::vector<int> order(n);
    for (int i = 0; i < n; ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](int a, int b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
    double sum = 0;
    for (float x : l) sum += std::exp(double(x));
    std::set<TokenId> want;
    double cum = 0;
    for (int id : order) {
        want.insert(id);
        cum += std::exp(double(l[id]));
        if (cum >= 0.6 * sum) break;
    }
    SamplingParams p = plain(50.0f);  // very hot: spread the draws over the kept set
    p.top_p = 0.6f;
    Sampler s(p, n);
    auto got = support(s, l, 3000);
    for (TokenId t : got) EXPECT_TRUE(want.count(t)) << t;
    EXPECT_GT(got.size(), want.size() * 9 / 10);
    EXPECT_GT(want.size(), 50u);
}

TEST(Sampler, MinPIsRelativeToMaxProbability) {
    auto l = logits_of({0.5f, 0.3f, 0.15f, 0.05f});
    SamplingParams p = plain();
    p.min_p = 0.2f;  // threshold 0.1
    Sampler s1(p, 4);
    EXPECT_EQ(support(s1, l), (std::set<TokenId>{0, 1, 2}));
    p.min_p = 0.5f;  // threshold 0.25
    Sampler s2(p, 4);
    EXPECT_EQ(support(s2, l), (std::set<TokenId>{0, 1}));
    p.min_p = 0.9f;
    Sampler s3(p, 4);
    EXPECT_EQ(support(s3, l), (std::set<TokenId>{0}));
}

TEST(Sampler, DistributionMatchesSoftmax) {
    const std::vector<float> probs = {0.5f, 0.3f, 0.15f, 0.05f};
    auto l = logits_of(probs);
    Sampler s(plain(), 4);
    std::vector<int> hist(4, 0);
    const int n = 20000;
    for (int i = 0; i < n; ++i) ++hist[s.sample(l.data())];
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(hist[i] / double(n), probs[i], 0.015) << i;

    // Temperature 2 flattens: p ~ sqrt(prob), renormalized.
    SamplingParams p = plain(2.0f);
    Sampler t(p, 4);
    std::fill(hist.begin(), hist.end(), 0);
    for (int i = 0; i < n; ++i) ++hist[t.sample(l.data())];
    double z = 0;
    for (float q : probs) z += std::sqrt(q);
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(hist[i] / double(n), std::sqrt(probs[i]) / z, 0.015);
}

TEST(Sampler, RepeatPenaltyDividesPositiveMultipliesNegative) {
    SamplingParams p = plain(0.0f);
    p.repeat_penalty = 1.5f;
    std::vector<float> pos = {2.0f, 1.9f};
    Sampler s(p, 2);
    EXPECT_EQ(s.sample(pos.data()), 0);
    s.accept(0);
    EXPECT_EQ(s.sample(pos.data()), 1);  // 2.0 / 1.5 < 1.9

    std::vector<float> neg = {-1.0f, -1.1f};
    Sampler n(p, 2);
    EXPECT_EQ(n.sample(neg.data()), 0);
    n.accept(0);
    EXPECT_EQ(n.sample(neg.data()), 1);  // -1.0 * 1.5 < -1.1
}

TEST(Sampler, PresenceAndFrequencyPenalties) {
    std::vector<float> l = {1.0f, 0.85f};
    SamplingParams p = plain(0.0f);
    p.presence_penalty = 0.2f;
    Sampler pres(p, 2);
    pres.accept(0);
    EXPECT_EQ(pres.sample(l.data()), 1);  // 1.0 - 0.2 < 0.85

    p.presence_penalty = 0.0f;
    p.frequency_penalty = 0.06f;
    Sampler freq(p, 2);
    freq.accept(0);
    freq.accept(0);
    EXPECT_EQ(freq.sample(l.data()), 0);  // 1.0 - 0.12 > 0.85
    freq.accept(0);
    EXPECT_EQ(freq.sample(l.data()), 1);  // 1.0 - 0.18 < 0.85
}

TEST(Sampler, PenaltyWindow) {
    std::vector<float> l = {1.0f, 0.5f, 0.0f, 0.0f};
    SamplingParams p = plain(0.0f);
    p.presence_penalty = 1.0f;
    p.repeat_last_n = 2;
    Sampler s(p, 4);
    s.accept(0);
    EXPECT_EQ(s.sample(l.data()), 1);
    s.accept(2);
    EXPECT_EQ(s.sample(l.data()), 1);
    s.accept(3);  // 0 leaves the window of 2
    EXPECT_EQ(s.sample(l.data()), 0);

    p.repeat_last_n = 0;  // off
    Sampler off(p, 4);
    off.accept(0);
    EXPECT_EQ(off.sample(l.data()), 0);

    p.repeat_last_n = -1;  // everything accepted since reset
    Sampler all(p, 4);
    all.accept(0);
    for (int i = 0; i < 100; ++i) all.accept(3);
    EXPECT_EQ(all.sample(l.data()), 1);
    all.reset();
    EXPECT_EQ(all.sample(l.data()), 0);
}

TEST(Sampler, IgnoreEosSuppressesEog) {
    std::vector<float> l = {0.0f, 1.0f, 5.0f};
    SamplingParams p = plain(0.0f);
    Sampler keep(p, 3, {2});
    EXPECT_EQ(keep.sample(l.data()), 2);
    p.ignore_eos = true;
    Sampler g(p, 3, {2});
    EXPECT_EQ(g.sample(l.data()), 1);
    p.temperature = 1.0f;
    Sampler s(p, 3, {2});
    EXPECT_EQ(support(s, l, 500).count(2), 0u);
}

TEST(Sampler, AllSuppressedDoesNotCrash) {
    std::vector<float> l = {-INFINITY, -INFINITY};
    SamplingParams p;
    p.seed = 3;
    Sampler s(p, 2);
    TokenId t = s.sample(l.data());
    EXPECT_TRUE(t == 0 || t == 1);
}

TEST(Sampler, RejectsBadParams) {
    SamplingParams p;
    EXPECT_THROW(Sampler(p, 0), Error);
    p.repeat_penalty = 0.0f;
    EXPECT_THROW(Sampler(p, 10), Error);
    p.repeat_penalty = 1.0f;
    p.temperature = NAN;
    EXPECT_THROW(Sampler(p, 10), Error);
}

TEST(Sampler, LargeVocabDefaultChainAndNoTopK) {
    const int n = 152064;
    auto l = noisy_logits(n, 123);
    SamplingParams p;
    p.seed = 11;
    p.repeat_penalty = 1.1f;
    Sampler a(p, n);
    auto sa = run(a, l, 20);
    for (TokenId t : sa) EXPECT_TRUE(t >= 0 && t < n);
    p.top_k = 0;  // top-p over the whole vocabulary
    Sampler b(p, n);
    for (TokenId t : run(b, l, 20)) EXPECT_TRUE(t >= 0 && t < n);
}

// ---------------------------------------------------------------------------------------------

TEST(StopMatcher, PassesTextThroughWithoutStops) {
    StopMatcher m({});
    auto r = m.feed("hello ");
    EXPECT_EQ(r.text, "hello ");
    EXPECT_FALSE(r.stopped);
    EXPECT_EQ(m.feed("world").text, "world");
    EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, HoldsIncompleteUtf8) {
    StopMatcher m({});
    EXPECT_EQ(m.feed("a\xE4\xB8").text, "a");  // 中 = E4 B8 AD
    EXPECT_EQ(m.feed("\xAD").text, "\xE4\xB8\xAD");
    EXPECT_EQ(m.feed("\xF0\x9F").text, "");  // 😀 = F0 9F 98 80
    EXPECT_EQ(m.feed("\x98").text, "");
    EXPECT_EQ(m.feed("\x80!").text, "\xF0\x9F\x98\x80!");
    EXPECT_EQ(m.feed("\xE4").text, "");
    EXPECT_EQ(m.flush(), "\xE4");  // the end gives back whatever is held
    // Stray continuation bytes are not held forever.
    StopMatcher s({});
    EXPECT_EQ(s.feed("x\x80\x80\x80").text, "x\x80\x80\x80");
}

TEST(StopMatcher, StopAcrossPieces) {
    StopMatcher m({"</s>"});
    EXPECT_EQ(m.feed("Hello <").text, "Hello ");
    auto r = m.feed("/");
    EXPECT_EQ(r.text, "");
    EXPECT_FALSE(r.stopped);
    r = m.feed("s>more text");
    EXPECT_EQ(r.text, "");
    EXPECT_TRUE(r.stopped);
    EXPECT_TRUE(m.stopped());
    r = m.feed("after");
    EXPECT_EQ(r.text, "");
    EXPECT_TRUE(r.stopped);
    EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, FalseStartIsReleased) {
    StopMatcher m({"</s>"});
    EXPECT_EQ(m.feed("a </").text, "a ");
    EXPECT_EQ(m.feed("b>").text, "</b>");
    EXPECT_EQ(m.feed("x<").text, "x");
    EXPECT_EQ(m.flush(), "<");
}

TEST(StopMatcher, TextBeforeStopInSamePiece) {
    StopMatcher m({"\n\nUser:"});
    auto r = m.feed("The answer is 4.\n\nUser: next");
    EXPECT_EQ(r.text, "The answer is 4.");
    EXPECT_TRUE(r.stopped);
}

TEST(StopMatcher, EarliestStopWins) {
    StopMatcher m({"cd", "bcx", "abc"});
    auto r = m.feed("zzabcd");
    EXPECT_EQ(r.text, "zz");
    EXPECT_TRUE(r.stopped);
}

TEST(StopMatcher, OverlappingPrefixes) {
    // "aab" with text "aaab": the held "aa" is not a match, but its suffix is.
    StopMatcher m({"aab"});
    EXPECT_EQ(m.feed("xa").text, "x");
    EXPECT_EQ(m.feed("a").text, "");
    EXPECT_EQ(m.feed("a").text, "a");
    auto r = m.feed("b!");
    EXPECT_EQ(r.text, "");
    EXPECT_TRUE(r.stopped);
}

TEST(StopMatcher, Utf8StopStrings) {
    StopMatcher m({"。", "停止"});
    EXPECT_EQ(m.feed("你好").text, "你好");
    EXPECT_EQ(m.feed("\xE5\x81").text, "");  // first two bytes of 停
    EXPECT_EQ(m.feed("\x9C").text, "");      // 停 complete: could start 停止
    EXPECT_EQ(m.feed("下").text, "停下");
    EXPECT_EQ(m.feed("世界\xE3\x80").text, "世界");  // 。 = E3 80 82
    auto r = m.feed("\x82后面");
    EXPECT_EQ(r.text, "");
    EXPECT_TRUE(r.stopped);
}

TEST(StopMatcher, EmptyStopStringsAreIgnored) {
    StopMatcher m({"", "END"});
    EXPECT_EQ(m.feed("abc").text, "abc");
    auto r = m.feed("xEND");
    EXPECT_EQ(r.text, "x");
    EXPECT_TRUE(r.stopped);
}

}  // namespace
}  // namespace duan
