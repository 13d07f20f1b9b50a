// The real SeqEngine: one llm::Context whose n_seq KV-cache sequences are the scheduler's slots.
// Each step builds ONE batch: a prompt chunk of every prefilling slot plus the last sampled token
// of every decoding slot, evaluated by a single Context::decode call.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "hybrid/scheduler.h"
#include "llm/context.h"
#include "llm/model.h"
#include "llm/sampler.h"

namespace duan::hybrid {

struct LocalEngineOptions {
    int n_slots = 4;
    int n_ctx = 0;              // positions per sequence; 0: min(training context, 4096)
    int n_threads = 0;          // 0: all cores
    int prefill_chunk = 256;    // prompt tokens per slot per step (keeps decoders from stalling)
    std::string chat_template;  // name; "" : detected from the model (chatml if unknown)
    std::string model_id;       // "" : the file's general.name or "local"
};

class LocalEngine : public SeqEngine {
  public:
    LocalEngine(const Model& model, LocalEngineOptions opt);
    ~LocalEngine() override;
    int n_slots() const override { return opt_.n_slots; }
    int n_ctx() const override;
    std::string model_id() const override { return opt_.model_id; }
    std::vector<int32_t> tokenize(const GenRequest& req) const override;
    void begin(int slot, const GenRequest& req, std::vector<int32_t> prompt) override;
    void step(const std::vector<int>& slots, std::vector<SlotStep>& out) override;
    void end(int slot) override;
    // The prompt text a chat request renders to (for tests and --verbose).
    std::string render_chat(const GenRequest& req) const;

  private:
    struct Seq;
    const Model& model_;
    LocalEngineOptions opt_;
    std::string template_;  // "" : plain "role: content" rendering
    std::unique_ptr<Context> ctx_;
    std::vector<std::unique_ptr<Seq>> seqs_;
};

}  // namespace duan::hybrid
