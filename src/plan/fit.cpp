#include "plan/fit.h"

#include <algorithm>
#include <fstream>

#include "core/error.h"
#include "kernels/kernels.h"

namespace duan::plan {

RunShape run_shape(const ModelShape& m, const ContextOptions& o) {
    RunShape r;
    r.n_ctx = o.n_ctx > 0 ? o.n_ctx : static_cast<int>(std::min<int64_t>(m.n_ctx_train, 4096));
    r.n_seq = std::max(1, o.n_seq);
    r.n_ubatch = std::max(1, o.n_ubatch);
    r.n_threads = o.n_threads;
    r.cache_k = o.cache_type_k;
    r.cache_v = o.cache_type_v;
    return r;
}

std::string explain(const MemoryPlan& p) {
    std::string s;
    char buf[512];
    for (const auto& l : p.lines) {
        std::snprintf(buf, sizeof buf, "  %-10s %10s  %s\n", l.name.c_str(), gb(l.bytes).c_str(),
                      l.detail.c_str());
        s += buf;
    }
    std::snprintf(buf, sizeof buf, "  %-10s %10s", "total", gb(p.total()).c_str());
    return s + buf;
}

FitResult check_fits(const ModelShape& m, ContextOptions& opts, uint64_t budget,
                     bool allow_fallback) {
    FitResult res;
    res.budget = budget;
    RunShape r = run_shape(m, opts);
    res.plan = plan_memory(m, r);
    res.fits = res.plan.total() <= budget;
    if (res.fits) return res;

    const MemoryPlan first = res.plan;
    std::string tried;
    if (allow_fallback) {
        // Fallbacks, each keeping the previous: KV cache at q8_0 (half of f16, near-lossless),
        // then halve the context while it stays >= 512.
        auto kv_ok = [&](DType t) {
            return m.head_dim % dtype_info(t).block_size == 0 && kernels::can_quantize(t);
        };
        std::vector<RunShape> steps;
        RunShape s = r;
        if ((s.cache_k == DType::F16 || s.cache_k == DType::F32) && kv_ok(DType::Q8_0)) {
            s.cache_k = s.cache_v = DType::Q8_0;
            steps.push_back(s);
        }
        while (s.n_ctx / 2 >= 512) {
            s.n_ctx /= 2;
            steps.push_back(s);
        }
        for (const RunShape& st : steps) {
            MemoryPlan p = plan_memory(m, st);
            tried += "\n  ctx " + std::to_string(st.n_ctx) + ", KV " + dtype_name(st.cache_k) +
                     ": " + gb(p.total());
            if (p.total() <= budget) {
                res.adjusted = true;
                res.plan = p;
                res.message = "does not fit the budget of " + gb(budget) + " as asked (" +
                              gb(first.total()) + " at ctx " + std::to_string(r.n_ctx) + ", KV " +
                              dtype_name(r.cache_k) + "); using ctx " + std::to_string(st.n_ctx) +
                              " with a " + dtype_name(st.cache_k) + " KV cache (" + gb(p.total()) +
                              ")";
                opts.n_ctx = st.n_ctx;
                opts.cache_type_k = st.cache_k;
                opts.cache_type_v = st.cache_v;
                return res;
            }
        }
    }
    fail(m.name, " (", m.type, ") needs ", gb(first.total()), " but the memory budget is ",
         gb(budget), " (short by ", gb(first.total() - budget), "):\n", explain(first),
         tried.empty() ? "" : "\nlower-memory settings tried:" + tried,
         "\nuse a smaller quantization (e.g. q4_0) or model, or raise --budget");
}

FitResult check_fits(const Model& model, ContextOptions& opts, uint64_t budget,
                     bool allow_fallback) {
    return check_fits(shape_from_gguf(model.file()), opts, budget, allow_fallback);
}

uint64_t default_budget_this_machine() {
    std::ifstream in("/proc/meminfo");
    std::string key;
    uint64_t kb = 0, total = 0, avail = 0;
    std::string unit;
    while (in >> key >> kb) {
        std::getline(in, unit);
        if (key == "MemTotal:") total = kb * 1024;
        if (key == "MemAvailable:") avail = kb * 1024;
    }
    uint64_t b = total / 10 * 8;
    if (avail > 0) b = std::min(b, avail);
    return b > 0 ? b : UINT64_MAX;
}

}  // namespace duan::plan
