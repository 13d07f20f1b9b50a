// duan perplexity: PPL of a text as llama.cpp's perplexity tool computes it, and KL divergence
// against a saved base (llm/perplexity.h documents the method and the base file format).
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "llm/perplexity.h"

namespace duan::cli {

int cmd_perplexity(int argc, char** argv) {
    CLI::App app{"duan perplexity: perplexity of a text (and KL divergence against a base)",
                 "duan perplexity"};
    ModelOptions mo;
    mo.n_ctx = 512;
    std::string file, kld_base;
    int chunks = -1, top_k = 32;
    bool kld = false, quiet = false;
    mo.add(app);
    app.add_option("-f,--file", file, "text file")->required();
    app.add_option("--chunks", chunks, "evaluate at most this many chunks (-1 = all)");
    app.add_option("--kl-divergence-base", kld_base,
                   "base log-prob file: written by a plain run, read with --kl-divergence");
    app.add_flag("--kl-divergence", kld, "compare with --kl-divergence-base FILE (KLD, top-1)");
    app.add_option("--kl-top-k", top_k, "log-probs kept per token in the base file");
    app.add_flag("-q,--quiet", quiet, "no per-chunk progress");
    if (int rc = parse(app, argc, argv); rc >= 0) return rc;
    if (kld && kld_base.empty()) fail("--kl-divergence needs --kl-divergence-base FILE");
    if (mo.n_ctx <= 0) fail("-c must be positive for perplexity");

    std::ifstream f(file, std::ios::binary);
    if (!f) fail(file, ": cannot open");
    std::stringstream ss;
    ss << f.rdbuf();

    auto model = Model::load(mo.model);
    ContextOptions co = mo.context_options();
    co.n_ubatch = std::max(co.n_ubatch, mo.n_ctx);
    Context ctx(*model, co);
    PerplexityOptions po;
    po.n_chunks = chunks;
    po.kld_top_k = top_k;
    if (kld)
        po.kld_base_in = kld_base;
    else
        po.kld_base_out = kld_base;
    if (!quiet)
        po.progress = [](int c, int n, double ppl) {
            std::fprintf(stderr, "[%d/%d] %.4f%s", c, n, ppl, c == n || c % 8 == 0 ? "\n" : " ");
        };
    auto r = perplexity_text(ctx, ss.str(), po);
    std::printf(
        "model: %s\ntokens: %lld, chunks: %d of %d tokens, scored: %lld, %.2f s (%.0f t/s)\n",
        mo.model.c_str(), static_cast<long long>(r.n_tokens), r.n_chunks, ctx.n_ctx(),
        static_cast<long long>(r.n_scored), r.seconds,
        r.n_chunks * double(ctx.n_ctx()) / std::max(1e-9, r.seconds));
    std::printf("Final estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_err);
    if (r.kld) {
        const auto& k = *r.kld;
        std::printf("base PPL = %.4f, ln(PPL/PPL_base) = %.6f\n", k.ppl_base, k.ln_ppl_ratio);
        std::printf(
            "KLD: mean %.6f +/- %.6f, median %.6f, p90 %.6f, p95 %.6f, p99 %.6f, max %.6f\n",
            k.mean, k.mean_err, k.median, k.p90, k.p95, k.p99, k.max);
        std::printf("top-1 agreement: %.3f%%\n", 100.0 * k.top1_agree);
    } else if (!kld_base.empty()) {
        std::printf("base log-probs written to %s\n", kld_base.c_str());
    }
    return 0;
}

}  // namespace duan::cli
