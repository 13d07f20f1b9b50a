// duan imatrix: collect activation statistics (mean x² per input column of every weight matrix)
// over a calibration text, for `duan quantize --imatrix` (format in llm/imatrix.h).
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "llm/imatrix.h"
#include "llm/perplexity.h"

namespace duan::cli {

int cmd_imatrix(int argc, char** argv) {
    CLI::App app{"duan imatrix: collect an importance matrix for quantization", "duan imatrix"};
    ModelOptions mo;
    mo.n_ctx = 512;
    std::string file, out = "imatrix.gguf";
    int chunks = -1;
    mo.add(app);
    app.add_option("-f,--file", file, "calibration text")->required();
    app.add_option("-o,--output", out, "output file (GGUF imatrix)");
    app.add_option("--chunks", chunks, "at most this many chunks of -c tokens (-1 = all)");
    if (int rc = parse(app, argc, argv); rc >= 0) return rc;
    std::ifstream f(file, std::ios::binary);
    if (!f) fail(file, ": cannot open");
    std::stringstream ss;
    ss << f.rdbuf();

    auto model = Model::load(mo.model);
    ContextOptions co = mo.context_options();
    co.n_ubatch = std::max(co.n_ubatch, mo.n_ctx);
    Context ctx(*model, co);
    ImatrixCollector col(*model);
    col.attach(ctx);
    PerplexityOptions po;
    po.n_chunks = chunks;
    po.progress = [](int c, int n, double ppl) {
        std::fprintf(stderr, "[%d/%d] %.4f%s", c, n, ppl, c == n || c % 8 == 0 ? "\n" : " ");
    };
    auto r = perplexity_text(ctx, ss.str(), po);
    col.save(out, {file}, r.n_chunks, ctx.n_ctx());
    std::printf("%s: %zu matrices, %d chunks of %d tokens (PPL %.4f)\n", out.c_str(),
                col.n_entries(), r.n_chunks, ctx.n_ctx(), r.ppl);
    return 0;
}

}  // namespace duan::cli
