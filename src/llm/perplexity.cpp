#include "llm/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>

#include "core/error.h"

namespace duan {

namespace {

constexpr char kMagic[8] = {'D', 'U', 'A', 'N', 'K', 'L', 'D', '1'};

struct FileCloser {
    void operator()(std::FILE* f) const {
        if (f) std::fclose(f);
    }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

// max and log(Σ exp(l - max)) exactly as the reference tool computes them (float max, double sum
// of float exps), so our NLLs round the same way.
struct LogSumExp {
    float max;
    double log_sum;
};
LogSumExp log_sum_exp(const float* l, int n) {
    float mx = l[0];
    for (int i = 1; i < n; ++i) mx = std::max(mx, l[i]);
    double s = 0.0;
    for (int i = 0; i < n; ++i) s += std::exp(l[i] - mx);
    return {mx, std::log(s)};
}

struct BaseHeader {
    uint32_t n_vocab, n_ctx, n_chunk, top_k;
};

void write_all(std::FILE* f, const void* p, size_t n, const std::string& path) {
    if (n && std::fwrite(p, 1, n, f) != n) fail(path, ": write failed (disk full?)");
}
void read_all(std::FILE* f, void* p, size_t n, const std::string& path, const char* what) {
    if (n && std::fread(p, 1, n, f) != n) fail(path, ": truncated while reading ", what);
}

double percentile(const std::vector<float>& sorted, double q) {
    if (sorted.empty()) return 0;
    const double pos = q * (sorted.size() - 1);
    const size_t lo = static_cast<size_t>(pos);
    const size_t hi = std::min(lo + 1, sorted.size() - 1);
    return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
}

}  // namespace

PerplexityResult perplexity(Context& ctx, const std::vector<TokenId>& tokens_in,
                            const PerplexityOptions& o) {
    const Tokenizer& tok = ctx.model().tokenizer();
    const int n_ctx = ctx.n_ctx();
    const int n_vocab = ctx.model().hparams().n_vocab;
    if (n_ctx < 4) fail("perplexity: context of ", n_ctx, " tokens is too short");
    if (static_cast<int64_t>(tokens_in.size()) < 2 * static_cast<int64_t>(n_ctx))
        fail("perplexity: the text has ", tokens_in.size(), " tokens; at least ", 2 * n_ctx,
             " (2 × context) are needed");
    std::vector<TokenId> tokens = tokens_in;
    const int n_chunk_max = static_cast<int>(tokens.size() / n_ctx);
    const int n_chunk = o.n_chunks < 0 ? n_chunk_max : std::min(o.n_chunks, n_chunk_max);
    const int first = n_ctx / 2;
    const int n_score = n_ctx - 1 - first;  // per chunk
    const bool add_bos = tok.add_bos() && tok.bos() >= 0;

    // KLD base output / input.
    FilePtr out, in;
    const int top_k = std::clamp(o.kld_top_k, 1, n_vocab);
    BaseHeader bh{};
    if (!o.kld_base_out.empty()) {
        out.reset(std::fopen(o.kld_base_out.c_str(), "wb"));
        if (!out) fail(o.kld_base_out, ": cannot create");
        bh = {static_cast<uint32_t>(n_vocab), static_cast<uint32_t>(n_ctx),
              static_cast<uint32_t>(n_chunk), static_cast<uint32_t>(top_k)};
        write_all(out.get(), kMagic, 8, o.kld_base_out);
        write_all(out.get(), &bh, sizeof bh, o.kld_base_out);
        write_all(out.get(), tokens.data(), sizeof(TokenId) * size_t(n_chunk) * n_ctx,
                  o.kld_base_out);
    }
    int chunks = n_chunk;
    if (!o.kld_base_in.empty()) {
        const std::string& p = o.kld_base_in;
        in.reset(std::fopen(p.c_str(), "rb"));
        if (!in) fail(p, ": cannot open");
        char magic[8];
        read_all(in.get(), magic, 8, p, "the magic");
        if (std::memcmp(magic, kMagic, 8) != 0)
            fail(p, ": offset 0: not a duan KLD base file (magic DUANKLD1 expected)");
        read_all(in.get(), &bh, sizeof bh, p, "the header");
        if (bh.n_vocab != static_cast<uint32_t>(n_vocab))
            fail(p, ": n_vocab ", bh.n_vocab, " but the model has ", n_vocab);
        if (bh.n_ctx != static_cast<uint32_t>(n_ctx))
            fail(p, ": n_ctx ", bh.n_ctx, " but this run uses ", n_ctx, " (pass -c ", bh.n_ctx,
                 ")");
        if (bh.top_k < 1 || bh.top_k > bh.n_vocab) fail(p, ": top_k ", bh.top_k, " out of range");
        if (bh.n_chunk > static_cast<uint32_t>(n_chunk_max))
            fail(p, ": ", bh.n_chunk, " chunks but the text holds only ", n_chunk_max);
        // The expected size must match before we read (no giant reads from a lying header).
        const uint64_t expect = 8 + sizeof bh + 4ull * bh.n_chunk * bh.n_ctx +
                                uint64_t(bh.n_chunk) * n_score * (4 + 8ull * bh.top_k);
        std::fseek(in.get(), 0, SEEK_END);
        const uint64_t size = static_cast<uint64_t>(std::ftell(in.get()));
        if (size != expect) fail(p, ": ", size, " bytes, the header implies ", expect);
        std::fseek(in.get(), 8 + sizeof bh, SEEK_SET);
        std::vector<TokenId> base_tokens(size_t(bh.n_chunk) * n_ctx);
        read_all(in.get(), base_tokens.data(), base_tokens.size() * 4, p, "tokens");
        if (!std::equal(base_tokens.begin(), base_tokens.end(), tokens.begin()))
            fail(p, ": the base was computed on different tokens (another text or vocabulary)");
        chunks = std::min<int>(n_chunk, static_cast<int>(bh.n_chunk));
    }

    PerplexityResult r;
    r.n_tokens = static_cast<int64_t>(tokens.size());
    double nll = 0, nll2 = 0;
    int64_t count = 0;
    std::vector<float> klds;
    double kld_sum = 0, kld_sum2 = 0, nll_base_sum = 0;
    int64_t same_top = 0;

    std::vector<BatchToken> batch(n_ctx);
    std::vector<double> tok_nll(n_score);
    std::vector<float> tok_kld(n_score);
    std::vector<uint8_t> tok_same(n_score);
    const size_t rec_floats = 1 + 2 * size_t(top_k);
    std::vector<float> rec_out;  // records for the base file, written per chunk
    std::vector<float> rec_in;
    const size_t in_rec = in ? 1 + 2 * size_t(bh.top_k) : 0;

    const auto t0 = std::chrono::steady_clock::now();
    for (int c = 0; c < chunks; ++c) {
        const int start = c * n_ctx;
        for (int j = 0; j < n_ctx; ++j) {
            batch[j].token = (j == 0 && add_bos) ? tok.bos() : tokens[start + j];
            batch[j].pos = j;
            batch[j].seq = 0;
            batch[j].want_logits = j >= first;
        }
        ctx.clear(0);
        const std::vector<float>& logits = ctx.decode(batch);
        // logits rows: positions first … n_ctx-1; row i predicts tokens[start + first + i + 1].
        if (out) rec_out.assign(size_t(n_score) * rec_floats, 0.f);
        if (in) {
            rec_in.resize(size_t(n_score) * in_rec);
            read_all(in.get(), rec_in.data(), rec_in.size() * 4, o.kld_base_in, "records");
        }
        ctx.pool().parallel_for(n_score, [&](int64_t b, int64_t e) {
            std::vector<int> idx;
            for (int64_t i = b; i < e; ++i) {
                const float* l = &logits[size_t(i) * n_vocab];
                const int next = tokens[start + first + i + 1];
                const LogSumExp ls = log_sum_exp(l, n_vocab);
                tok_nll[i] = -(l[next] - ls.max - ls.log_sum);
                const float lse = ls.max + static_cast<float>(ls.log_sum);
                if (out) {
                    float* rec = &rec_out[size_t(i) * rec_floats];
                    rec[0] = static_cast<float>(tok_nll[i]);
                    idx.resize(n_vocab);
                    std::iota(idx.begin(), idx.end(), 0);
                    std::partial_sort(
                        idx.begin(), idx.begin() + top_k, idx.end(),
                        [&](int a, int bb) { return l[a] > l[bb] || (l[a] == l[bb] && a < bb); });
                    for (int k = 0; k < top_k; ++k) {
                        int32_t id = idx[k];
                        std::memcpy(&rec[1 + 2 * k], &id, 4);
                        rec[2 + 2 * k] = l[id] - lse;
                    }
                }
                if (in) {
                    const float* rec = &rec_in[size_t(i) * in_rec];
                    int imax = 0;
                    for (int v = 1; v < n_vocab; ++v)
                        if (l[v] > l[imax]) imax = v;
                    double kld = 0, pb_sum = 0, q_sum = 0;
                    int32_t top_base = -1;
                    for (uint32_t k = 0; k < bh.top_k; ++k) {
                        int32_t id;
                        std::memcpy(&id, &rec[1 + 2 * k], 4);
                        if (id < 0 || id >= n_vocab) id = 0;  // corrupt record: count as token 0
                        if (k == 0) top_base = id;
                        const double lpb = rec[2 + 2 * k];
                        const double lq = l[id] - lse;
                        const double pb = std::exp(lpb);
                        kld += pb * (lpb - lq);
                        pb_sum += pb;
                        q_sum += std::exp(lq);
                    }
                    const double pt = 1.0 - pb_sum, qt = std::max(1e-30, 1.0 - q_sum);
                    if (pt > 1e-12) kld += pt * std::log(pt / qt);
                    tok_kld[i] = static_cast<float>(std::max(0.0, kld));
                    tok_same[i] = imax == top_base;
                }
            }
        });
        for (int i = 0; i < n_score; ++i) {
            nll += tok_nll[i];
            nll2 += tok_nll[i] * tok_nll[i];
            if (in) {
                klds.push_back(tok_kld[i]);
                kld_sum += tok_kld[i];
                kld_sum2 += double(tok_kld[i]) * tok_kld[i];
                same_top += tok_same[i];
                nll_base_sum += rec_in[size_t(i) * in_rec];
            }
        }
        count += n_score;
        if (out) write_all(out.get(), rec_out.data(), rec_out.size() * 4, o.kld_base_out);
        if (o.progress) o.progress(c + 1, chunks, std::exp(nll / count));
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (out) {
        if (std::fflush(out.get()) != 0) fail(o.kld_base_out, ": write failed");
        out.reset();
    }

    r.n_chunks = chunks;
    r.n_scored = count;
    r.nll = nll / count;
    r.ppl = std::exp(r.nll);
    double var = nll2 / count - r.nll * r.nll;
    r.ppl_err = var > 0 && count > 1 ? std::sqrt(var / (count - 1)) * r.ppl : 0;
    if (in) {
        KldStats k;
        k.n = count;
        k.mean = kld_sum / count;
        const double kv = kld_sum2 / count - k.mean * k.mean;
        k.mean_err = kv > 0 && count > 1 ? std::sqrt(kv / (count - 1)) : 0;
        std::sort(klds.begin(), klds.end());
        k.median = percentile(klds, 0.5);
        k.p90 = percentile(klds, 0.90);
        k.p95 = percentile(klds, 0.95);
        k.p99 = percentile(klds, 0.99);
        k.max = klds.empty() ? 0 : klds.back();
        k.top1_agree = double(same_top) / count;
        k.ppl_base = std::exp(nll_base_sum / count);
        k.ln_ppl_ratio = r.nll - nll_base_sum / count;
        r.kld = k;
    }
    return r;
}

PerplexityResult perplexity_text(Context& ctx, const std::string& text,
                                 const PerplexityOptions& opts) {
    const Tokenizer& tok = ctx.model().tokenizer();
    return perplexity(ctx, tok.encode(text, tok.add_bos(), false), opts);
}

}  // namespace duan
