// A deterministic SeqEngine for tests, load scripts and `duan serve --fake`: no model. Prompt
// tokens are the whitespace-separated words of the rendered prompt (plus one BOS); the output
// cycles through " the quick brown fox jumps over the lazy dog ." one word per step.
#pragma once
#include <atomic>
#include <chrono>
#include <string>
#include <vector>

#include "hybrid/scheduler.h"

namespace duan::hybrid {

struct FakeEngineOptions {
    int n_slots = 4;
    int n_ctx = 256;
    int prefill_chunk = 8;                    // prompt tokens per slot per step
    std::chrono::microseconds step_delay{0};  // simulated forward-pass time
    int eog_after = -1;                       // end of generation after this many tokens (-1 never)
    std::string model_id = "fake";
};

class FakeEngine : public SeqEngine {
  public:
    explicit FakeEngine(FakeEngineOptions opt = {});
    int n_slots() const override { return opt_.n_slots; }
    int n_ctx() const override { return opt_.n_ctx; }
    std::string model_id() const override { return opt_.model_id; }
    std::vector<int32_t> tokenize(const GenRequest& req) const override;
    void begin(int slot, const GenRequest& req, std::vector<int32_t> prompt) override;
    void step(const std::vector<int>& slots, std::vector<SlotStep>& out) override;
    void end(int slot) override;

    // Fault injection: the next `n` steps throw std::bad_alloc.
    std::atomic<int> fail_steps{0};
    std::atomic<int> max_batch{0};  // most slots seen in one step
    std::atomic<int> begun{0}, ended{0};

    static std::string word(int i);  // the i-th output piece

  private:
    struct Seq {
        bool live = false;
        int n_prompt = 0, consumed = 0, n_gen = 0;
    };
    FakeEngineOptions opt_;
    std::vector<Seq> seqs_;
};

}  // namespace duan::hybrid
