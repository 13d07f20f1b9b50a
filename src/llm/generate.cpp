#include "llm/generate.h"

#include <chrono>

#include "core/error.h"

namespace duan {

GenerateStats generate(Context& ctx, Sampler& sampler, const std::vector<TokenId>& prompt,
                       int n_predict, const std::function<bool(TokenId)>& on_token,
                       bool ignore_eos, int seq) {
    using clock = std::chrono::steady_clock;
    GenerateStats st;
    const Tokenizer& tok = ctx.model().tokenizer();
    int pos = ctx.seq_len(seq);
    if (prompt.empty()) fail("generate: empty prompt");
    if (pos + static_cast<int>(prompt.size()) > ctx.n_ctx())
        fail("prompt of ", prompt.size(), " tokens does not fit the context (", ctx.n_ctx() - pos,
             " positions left of ", ctx.n_ctx(), ")");

    std::vector<BatchToken> batch;
    for (size_t i = 0; i < prompt.size(); ++i)
        batch.push_back({prompt[i], pos + static_cast<int32_t>(i), seq, i + 1 == prompt.size()});
    for (TokenId t : prompt) sampler.accept(t);
    auto t0 = clock::now();
    const std::vector<float>* logits = &ctx.decode(batch);
    st.prefill_seconds = std::chrono::duration<double>(clock::now() - t0).count();
    st.n_prompt = static_cast<int>(prompt.size());
    pos += static_cast<int>(prompt.size());

    auto t1 = clock::now();
    for (;;) {
        if (n_predict >= 0 && st.n_generated >= n_predict) {
            st.stop_reason = "length";
            break;
        }
        const TokenId id = sampler.sample(logits->data());
        sampler.accept(id);
        ++st.n_generated;
        if (!ignore_eos && tok.is_eog(id)) {
            st.stop_reason = "eos";
            break;
        }
        if (!on_token(id)) {
            st.stop_reason = "callback";
            break;
        }
        if (n_predict >= 0 && st.n_generated >= n_predict) {
            st.stop_reason = "length";
            break;
        }
        if (pos >= ctx.n_ctx()) {
            st.stop_reason = "context";
            break;
        }
        logits = &ctx.decode({{id, pos++, seq, true}});
    }
    st.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
    return st;
}

}  // namespace duan
