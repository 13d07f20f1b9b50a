// The logits report used to check the engine against the reference: exactly the schema of
// testdata/golden/*.json —
//   n_vocab; prompt (ids, evaluated as one batch from position 0);
//   prompt_top[i] = {ids, logits} top-16 after position i; full = {"<pos>": [n_vocab logits]};
//   greedy = n tokens by argmax, each fed back one at a time (the decode path);
//   greedy_top[s] = top-8 before greedy step s.
#pragma once
#include <nlohmann/json.hpp>
#include <vector>

#include "llm/context.h"

namespace duan {

nlohmann::json logits_report(Context& ctx, const std::vector<TokenId>& prompt, int n_greedy,
                             const std::vector<int>& full_positions);

// Indices of the k largest values (ties: lower index first), largest first.
std::vector<int> top_k_indices(const float* v, int n, int k);

}  // namespace duan
