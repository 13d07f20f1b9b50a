// Single-sequence generation: prefill a prompt, then sample one token at a time.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "llm/context.h"
#include "llm/sampler.h"

namespace duan {

struct GenerateStats {
    int n_prompt = 0;
    int n_generated = 0;
    double prefill_seconds = 0;
    double decode_seconds = 0;
    std::string stop_reason;  // "eos", "length", "context", "callback"
    double prefill_tps() const { return prefill_seconds > 0 ? n_prompt / prefill_seconds : 0; }
    // The first generated token comes from the prefill logits; decode covers the rest.
    double decode_tps() const {
        return decode_seconds > 0 && n_generated > 1 ? (n_generated - 1) / decode_seconds : 0;
    }
};

// Continues sequence `seq` of ctx from its cached length: evaluates `prompt`, then samples up to
// n_predict tokens (n_predict < 0: until EOS or the context is full). on_token is called for every
// sampled token and may return false to stop. EOS/EOT stop generation unless `ignore_eos`.
GenerateStats generate(Context& ctx, Sampler& sampler, const std::vector<TokenId>& prompt,
                       int n_predict, const std::function<bool(TokenId)>& on_token,
                       bool ignore_eos = false, int seq = 0);

}  // namespace duan
