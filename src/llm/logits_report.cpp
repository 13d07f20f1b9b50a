#include "llm/logits_report.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"

namespace duan {

std::vector<int> top_k_indices(const float* v, int n, int k) {
    std::vector<int> idx(n);
    std::iota(idx.begin(), idx.end(), 0);
    k = std::min(k, n);
    auto better = [&](int a, int b) { return v[a] > v[b] || (v[a] == v[b] && a < b); };
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), better);
    idx.resize(k);
    return idx;
}

namespace {
nlohmann::json top_entry(const float* v, int n, int k) {
    nlohmann::json ids = nlohmann::json::array(), logits = nlohmann::json::array();
    for (int i : top_k_indices(v, n, k)) {
        ids.push_back(i);
        logits.push_back(v[i]);
    }
    return {{"ids", ids}, {"logits", logits}};
}
}  // namespace

nlohmann::json logits_report(Context& ctx, const std::vector<TokenId>& prompt, int n_greedy,
                             const std::vector<int>& full_positions) {
    if (prompt.empty()) fail("logits: no prompt tokens");
    const int n_vocab = static_cast<int>(ctx.model().hparams().n_vocab);
    for (int p : full_positions)
        if (p < 0 || p >= static_cast<int>(prompt.size()))
            fail("logits: --full position ", p, " is outside the prompt (", prompt.size(),
                 " tokens)");
    ctx.clear(0);
    std::vector<BatchToken> batch;
    for (size_t i = 0; i < prompt.size(); ++i)
        batch.push_back({prompt[i], static_cast<int32_t>(i), 0, true});
    const std::vector<float> all = ctx.decode(batch);

    nlohmann::json out;
    out["n_vocab"] = n_vocab;
    out["prompt"] = prompt;
    out["prompt_top"] = nlohmann::json::array();
    for (size_t i = 0; i < prompt.size(); ++i)
        out["prompt_top"].push_back(top_entry(&all[i * n_vocab], n_vocab, 16));
    out["full"] = nlohmann::json::object();
    for (int p : full_positions)
        out["full"][std::to_string(p)] =
            std::vector<float>(all.begin() + static_cast<long>(p) * n_vocab,
                               all.begin() + static_cast<long>(p + 1) * n_vocab);

    out["greedy"] = nlohmann::json::array();
    out["greedy_top"] = nlohmann::json::array();
    std::vector<float> last(all.end() - n_vocab, all.end());
    int pos = static_cast<int>(prompt.size());
    for (int s = 0; s < n_greedy; ++s) {
        out["greedy_top"].push_back(top_entry(last.data(), n_vocab, 8));
        const int id = top_k_indices(last.data(), n_vocab, 1)[0];
        out["greedy"].push_back(id);
        if (s + 1 == n_greedy || pos >= ctx.n_ctx()) break;
        last = ctx.decode({{id, pos++, 0, true}});
    }
    return out;
}

}  // namespace duan
