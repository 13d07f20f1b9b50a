// Token sampling (greedy, temperature, top-k, top-p, min-p, repetition/presence/frequency
// penalties) and stop-string matching for generated text.
//
// The filter chain follows llama.cpp's default order and semantics:
//   penalties -> top-k -> top-p -> min-p -> temperature -> dist
// so top-p and min-p look at the distribution *before* temperature scaling.
//
// Reproducibility: the random draw is built from raw std::mt19937_64 output (whose sequence the
// C++ standard fixes) instead of std::uniform_real_distribution (whose algorithm it does not), and
// every sort uses a total order (logit descending, then id ascending). The same seed and the same
// logits give the same tokens with any standard library.
#pragma once
#include <cstdint>
#include <deque>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace duan {

// Seed value meaning "pick one at random" (std::random_device); Sampler::seed() reports the pick.
// 0xFFFFFFFF (llama.cpp's LLAMA_DEFAULT_SEED, what `--seed -1` means there) is accepted too.
inline constexpr uint64_t kRandomSeed = ~uint64_t{0};
inline bool is_random_seed(uint64_t s) {
    return s == kRandomSeed || s == 0xFFFFFFFFull;
}

struct SamplingParams {
    float temperature = 0.8f;     // <= 0: greedy argmax (ties: lowest id), the RNG is not used
    int top_k = 40;               // <= 0 or >= n_vocab: off
    float top_p = 0.95f;          // >= 1: off
    float min_p = 0.05f;          // <= 0: off; keeps tokens with p >= min_p * p_max
    float repeat_penalty = 1.0f;  // 1: off; positive logits are divided, negative multiplied
    int repeat_last_n = 64;       // window of accepted tokens the penalties look at; 0 off, <0 all
    float presence_penalty = 0.0f;   // logit -= presence * (count > 0)
    float frequency_penalty = 0.0f;  // logit -= frequency * count
    uint64_t seed = kRandomSeed;
    std::vector<std::string> stop;  // stop strings (applied to text by StopMatcher, not here)
    bool ignore_eos = false;        // suppress the end-of-generation ids given to Sampler
};

class Sampler {
  public:
    // n_vocab: length of every logits row passed to sample(). eog: end-of-generation token ids;
    // with params.ignore_eos they are never sampled (their logits become -inf), else unused.
    Sampler(const SamplingParams& params, int n_vocab, std::vector<TokenId> eog = {});

    // Picks the next token from logits[0..n_vocab). Does not modify `logits` and does not record
    // the token: call accept() with the token actually appended to the sequence. NaN logits are
    // treated as -inf.
    TokenId sample(const float* logits);

    // Records a token for the penalties (generated tokens; the caller may also feed prompt tokens).
    void accept(TokenId id);

    // Forgets the penalty history and restarts the RNG from seed(), so a rerun repeats exactly.
    void reset();

    // The seed in use (the random pick when params.seed was kRandomSeed).
    uint64_t seed() const { return seed_; }
    const SamplingParams& params() const { return params_; }

  private:
    struct Cand {
        TokenId id;
        float logit;
    };

    void prepare(const float* logits);  // candidates = all ids, suppression, penalties
    void top_k(size_t k);
    void top_p(float p);
    void min_p(float p);
    TokenId dist();
    double uniform01();  // [0, 1) from 53 bits of mt19937_64

    SamplingParams params_;
    int n_vocab_;
    std::vector<TokenId> suppressed_;  // eog ids when ignore_eos
    uint64_t seed_;
    std::mt19937_64 rng_;

    // Penalty window: the last repeat_last_n accepted tokens (unbounded window: counts only) and
    // how often each occurs in it. A deque, so a huge repeat_last_n allocates nothing up front.
    std::deque<TokenId> window_;
    std::unordered_map<TokenId, int> counts_;

    std::vector<Cand> cand_;        // working set, reused across calls
    size_t n_cand_ = 0;             // live prefix of cand_
    bool sorted_ = false;           // cand_[0..n_cand_) is sorted by logit desc, id asc
    std::vector<float> probs_;      // unnormalized, for dist()
    std::vector<Cand> scratch_;     // top-k heap, top-p boundary bucket
    std::vector<uint16_t> bucket_;  // top-p mass bucket of each candidate
};

// Finds stop strings in streamed text. feed() returns the text that is safe to show now: it
// holds back a suffix that could still become a stop string, and an incomplete UTF-8 sequence at
// the end (byte-level tokens can split a code point), so emitted text never ends mid-character.
// When a stop string appears, the text before it is emitted, the stop string and everything
// after it are dropped, and stopped() becomes true; later feeds return "".
class StopMatcher {
  public:
    struct Result {
        std::string text;      // safe to emit now
        bool stopped = false;  // a stop string was hit (now or earlier)
    };

    explicit StopMatcher(std::vector<std::string> stops);

    Result feed(std::string_view piece);
    // End of generation without a stop string: everything still held back (may end in an
    // incomplete UTF-8 sequence if the model produced one). "" after a stop.
    std::string flush();
    bool stopped() const { return stopped_; }

  private:
    std::vector<std::string> stops_;
    std::string held_;
    bool stopped_ = false;
};

}  // namespace duan
