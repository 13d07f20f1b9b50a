// Continuous batching: up to n_slots sequences share one model, each with its own KV-cache slot,
// and one scheduler thread advances all of them together, one batched forward pass per step
// (decoding slots add one token each; newly admitted slots add a chunk of their prompt). Requests
// beyond the slots wait in a bounded queue; when it is full, submit() throws 429 (back-pressure).
// A cancelled stream (client gone) frees its slot at the next step.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "hybrid/gen_stream.h"

namespace duan::hybrid {

// What one slot produced in a step.
struct SlotStep {
    bool sampled = false;   // a new token was sampled (false while the prompt is still prefilling)
    std::string piece;      // its text (complete UTF-8 so far), "" for end-of-generation tokens
    bool eog = false;       // the token ends the generation
    bool ctx_full = false;  // the slot's context is full: no further token can be decoded
    int prompt_consumed = 0;  // prompt tokens evaluated for this slot in this step
};

// The model side the scheduler drives. LocalEngine (local_engine.h) wraps llm::Context;
// FakeEngine (fake_engine.h) is deterministic for tests.
class SeqEngine {
  public:
    virtual ~SeqEngine() = default;
    virtual int n_slots() const = 0;
    virtual int n_ctx() const = 0;  // per sequence
    virtual std::string model_id() const = 0;
    // Prompt tokens of a request, chat template applied. Thread-safe: HTTP threads call it.
    // Throws ApiError(400) when the request cannot be rendered.
    virtual std::vector<int32_t> tokenize(const GenRequest& req) const = 0;
    // `slot` starts a new sequence (its cache cleared) with this prompt and the request's sampling.
    virtual void begin(int slot, const GenRequest& req, std::vector<int32_t> prompt) = 0;
    // One batched forward pass over `slots` (out is resized to slots.size()). A slot still in its
    // prompt consumes the next chunk of it; once the prompt is consumed, or when decoding, the
    // slot samples one token. May throw (e.g. out of memory): the scheduler fails those requests.
    virtual void step(const std::vector<int>& slots, std::vector<SlotStep>& out) = 0;
    virtual void end(int slot) = 0;
};

struct SchedulerOptions {
    int max_queue = 16;  // waiting requests beyond the slots; more get 429
    int retry_after_s = 1;
};

struct SchedulerStats {
    int active = 0, queued = 0, slots = 0, max_queue = 0;
    uint64_t steps = 0, tokens_generated = 0, prompt_tokens = 0;
    int max_batch_seqs = 0;        // most sequences seen in one step
    double prefill_tok_per_s = 0;  // moving averages, 0 until measured
    double decode_tok_per_s = 0;   // tokens/s one sequence sees while decoding
};

class Scheduler : public Backend {
  public:
    Scheduler(std::unique_ptr<SeqEngine> engine, SchedulerOptions opt = {});
    ~Scheduler() override;  // shutdown(false)

    std::shared_ptr<GenStream> submit(const GenRequest& req) override;
    // Prompt tokens of a request, or -1 when it cannot be rendered.
    int count_prompt_tokens(const GenRequest& req) const;
    // Stops accepting (503). drain: finish the active and queued requests first; otherwise they
    // end with an error. Idempotent; joins the scheduler thread.
    void shutdown(bool drain);
    // True when a new request would have to wait or be refused.
    bool saturated() const;
    SchedulerStats stats() const;
    const SeqEngine& engine() const { return *engine_; }

  private:
    struct Job;
    void loop();
    void finish_job(int slot, const std::string& reason);

    std::unique_ptr<SeqEngine> engine_;
    SchedulerOptions opt_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::shared_ptr<Job>> queue_;
    std::vector<std::shared_ptr<Job>> slots_;  // nullptr: free
    bool accepting_ = true, stop_ = false, drain_ = true;
    SchedulerStats stats_;
    std::thread thread_;
    std::mutex shutdown_mu_;
};

}  // namespace duan::hybrid
