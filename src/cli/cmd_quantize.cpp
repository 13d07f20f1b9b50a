// duan quantize: GGUF → GGUF with a per-tensor quantization mix (Q4_K_M etc.;
// llm/quantize_model.h).
#include <cstdio>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "llm/imatrix.h"
#include "llm/quantize_model.h"

namespace duan::cli {

int cmd_quantize(int argc, char** argv) {
    CLI::App app{"duan quantize: quantize a GGUF model (types: " + file_type_list() + ")",
                 "duan quantize"};
    std::string in, out, type, imatrix_path;
    int threads = 0;
    bool allow_requantize = false, pure = false, quiet = false;
    app.add_option("input", in, "input GGUF (F32, F16 or BF16 weights)")->required();
    app.add_option("output", out, "output GGUF")->required();
    app.add_option("type", type,
                   "Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K_S/M/L, Q4_K_S/M, "
                   "Q5_K_S/M, Q6_K, F16, BF16")
        ->required();
    app.add_option("-t,--threads", threads, "threads (0 = all cores)");
    app.add_option("--imatrix", imatrix_path, "importance matrix from `duan imatrix`");
    app.add_flag("--allow-requantize", allow_requantize,
                 "allow input tensors that are already quantized (loses accuracy)");
    app.add_flag("--pure", pure, "no mix: every quantizable tensor gets the base type");
    app.add_flag("-q,--quiet", quiet, "only print the summary and warnings");
    if (int rc = parse(app, argc, argv); rc >= 0) return rc;
    auto ft = file_type_from_name(type);
    if (!ft) fail("unknown type '", type, "'; choose one of ", file_type_list());
    if (in == out) fail("the output must differ from the input (", in, ")");

    ImatrixMap imatrix;
    QuantizeOptions o;
    o.ftype = *ft;
    o.n_threads = threads;
    o.allow_requantize = allow_requantize;
    o.pure = pure;
    if (!imatrix_path.empty()) {
        imatrix = load_imatrix(imatrix_path);
        o.imatrix = &imatrix;
        std::fprintf(stderr, "imatrix: %zu entries from %s\n", imatrix.size(),
                     imatrix_path.c_str());
    }
    o.log = [&](const std::string& line) {
        const bool important = line.rfind("warning", 0) == 0 || line.rfind("model size", 0) == 0;
        if (!quiet || important) std::fprintf(stderr, "%s\n", line.c_str());
    };
    auto r = quantize_model(in, out, o);
    std::printf("%s: %s, %.2f MiB, %.2f bits per weight\n", out.c_str(), file_type_name(*ft),
                r.bytes_out / 1048576.0, r.bits_per_weight());
    return 0;
}

}  // namespace duan::cli
