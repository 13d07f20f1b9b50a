// Perplexity and KL divergence over a text, computed as llama.cpp's perplexity tool does, so the
// figures are comparable with the reference's:
//   - the text is tokenized whole (BOS added when the vocabulary wants it, special-token text is
//     plain text) and cut into n_chunk = n_tokens / n_ctx chunks of n_ctx tokens;
//   - each chunk is evaluated from position 0 with a clear cache; its first token is replaced by
//     BOS (when the vocabulary adds BOS);
//   - only the second half is scored: logits at positions first = n_ctx/2 … n_ctx-2 predict the
//     next token, n_ctx-1-first tokens per chunk;
//   - PPL = exp(mean NLL); the ± is PPL × the standard error of the mean NLL.
//
// KL divergence against a base model (usually F32/F16): a first run writes the base's top-k
// log-probabilities per scored token (--kl-divergence-base FILE); a second run with the quantized
// model reads them and reports KLD(base || model) statistics and top-1 agreement.
//
// Base file format (little endian), "KLD base v1":
//   char magic[8] = "DUANKLD1" | u32 n_vocab | u32 n_ctx | u32 n_chunk | u32 top_k
//   | i32 tokens[n_chunk * n_ctx]            (the evaluated tokens, to catch a different
//   text/vocab) | per scored token, in order: f32 nll_base (of the actual next token),
//                                 top_k × { i32 id, f32 log_prob } sorted by log_prob descending.
// With top_k = n_vocab the KLD is exact. With fewer, the rest of the vocabulary is lumped into one
// "tail" outcome: KLD ≈ Σ_topk p·(log p − log q) + p_tail·log(p_tail / q_tail), which is a lower
// bound of the exact value (log-sum inequality) and, for k ≥ 32, within a few % of it in practice.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "llm/context.h"

namespace duan {

struct PerplexityOptions {
    int n_chunks = -1;         // -1 = as many as the text holds
    std::string kld_base_out;  // write base log-probs here ("" = don't)
    std::string kld_base_in;   // read base log-probs from here and compute KLD ("" = don't)
    int kld_top_k = 32;        // entries per token in the base file (clamped to n_vocab)
    // Called after each chunk with the running PPL.
    std::function<void(int chunk, int n_chunk, double ppl)> progress;
};

struct KldStats {
    int64_t n = 0;
    double mean = 0, mean_err = 0;  // mean KLD and its standard error
    double median = 0, p90 = 0, p95 = 0, p99 = 0, max = 0;
    double top1_agree = 0;    // fraction of tokens where both argmaxes agree
    double ppl_base = 0;      // the base model's PPL on the same tokens
    double ln_ppl_ratio = 0;  // mean(nll − nll_base)
};

struct PerplexityResult {
    double ppl = 0, ppl_err = 0;
    double nll = 0;  // mean NLL
    int n_chunks = 0;
    int64_t n_scored = 0;  // tokens scored
    int64_t n_tokens = 0;  // tokens in the whole text
    double seconds = 0;    // evaluation time
    std::optional<KldStats> kld;
};

// The context's n_ctx is the chunk length. `tokens` is the whole text, tokenized (with BOS).
PerplexityResult perplexity(Context& ctx, const std::vector<TokenId>& tokens,
                            const PerplexityOptions& opts);

// Tokenizes `text` as the reference tool does (add BOS per the vocabulary, no special parsing)
// and runs perplexity().
PerplexityResult perplexity_text(Context& ctx, const std::string& text,
                                 const PerplexityOptions& opts);

}  // namespace duan
