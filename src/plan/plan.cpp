#include "plan/plan.h"

#include <algorithm>
#include <chrono>
#include <fstream>

#include "core/error.h"
#include "llm/context.h"
#include "llm/model.h"
#include "llm/presets.h"

namespace duan::plan {

PlanRow make_row(const ModelShape& m, const RunShape& r, const Device& d, const Catalog& c,
                 const BudgetOptions& b, const Profile& p, int prompt_tokens, int answer_tokens) {
    PlanRow row;
    row.model = m;
    row.run = r;
    row.device = d;
    row.budget = app_budget(d, c, b);
    row.memory = plan_memory(m, r);
    row.fits = row.memory.total() <= row.budget.bytes;
    row.headroom =
        static_cast<int64_t>(row.budget.bytes) - static_cast<int64_t>(row.memory.total());
    row.speed = plan_speed(m, r, d, p, std::min(prompt_tokens, r.n_ctx), answer_tokens);
    return row;
}

nlohmann::json row_json(const PlanRow& row) {
    nlohmann::json j;
    j["model"] = row.model.name;
    j["type"] = row.model.type;
    j["device"] = row.device.id;
    j["n_ctx"] = row.run.n_ctx;
    j["cache_type_k"] = dtype_name(row.run.cache_k);
    j["cache_type_v"] = dtype_name(row.run.cache_v);
    j["params"] = row.model.n_params();
    j["weights_bytes"] = row.memory.weights;
    j["kv_cache_bytes"] = row.memory.kv_cache;
    j["compute_bytes"] = row.memory.compute;
    j["tokenizer_bytes"] = row.memory.tokenizer;
    j["runtime_bytes"] = row.memory.runtime;
    j["total_bytes"] = row.memory.total();
    j["budget_bytes"] = row.budget.bytes;
    j["budget_rule"] = row.budget.rule;
    j["fits"] = row.fits;
    j["headroom_bytes"] = row.headroom;
    j["prefill_tps"] = row.speed.prefill_tps;
    j["decode_tps"] = row.speed.decode_tps;
    j["naive_prefill_tps"] = row.speed.naive_prefill_tps;
    j["naive_decode_tps"] = row.speed.naive_decode_tps;
    j["calibrated"] = row.speed.calibrated;
    j["prompt_tokens"] = row.speed.prompt_tokens;
    j["answer_tokens"] = row.speed.answer_tokens;
    j["answer_seconds"] = row.speed.answer_seconds;
    j["naive_answer_seconds"] = row.speed.naive_answer_seconds;
    nlohmann::json lines = nlohmann::json::array();
    for (const auto& l : row.memory.lines)
        lines.push_back({{"name", l.name}, {"bytes", l.bytes}, {"detail", l.detail}});
    j["memory"] = lines;
    return j;
}

const std::vector<std::string>& recommend_types() {
    static const std::vector<std::string> t = {"f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0"};
    return t;
}

std::vector<PlanRow> recommend(const Device& d, const Catalog& c, const BudgetOptions& b,
                               const Profile& p, const RunShape& r, double min_decode_tps) {
    std::vector<std::pair<int, PlanRow>> fit;  // (type rank, row)
    for (const auto& preset : presets()) {
        const auto& types = recommend_types();
        for (size_t i = 0; i < types.size(); ++i) {
            ModelShape m = shape_from_preset(preset, types[i], Layout::LlamaCpp);
            RunShape rr = r;
            rr.n_ctx = std::min<int>(r.n_ctx, static_cast<int>(m.n_ctx_train));
            PlanRow row = make_row(m, rr, d, c, b, p);
            if (row.fits) fit.emplace_back(static_cast<int>(i), std::move(row));
        }
    }
    std::stable_sort(fit.begin(), fit.end(), [&](const auto& a, const auto& b2) {
        const bool fa = a.second.speed.decode_tps >= min_decode_tps;
        const bool fb = b2.second.speed.decode_tps >= min_decode_tps;
        if (fa != fb) return fa;
        if (!fa) return a.second.speed.decode_tps > b2.second.speed.decode_tps;
        if (a.second.model.n_params() != b2.second.model.n_params())
            return a.second.model.n_params() > b2.second.model.n_params();
        return a.first < b2.first;
    });
    std::vector<PlanRow> out;
    for (auto& [rank, row] : fit) out.push_back(std::move(row));
    return out;
}

namespace {
uint64_t status_kb(const char* key) {
    std::ifstream in("/proc/self/status");
    std::string line;
    const std::string k = std::string(key) + ":";
    while (std::getline(in, line))
        if (line.rfind(k, 0) == 0) return std::stoull(line.substr(k.size()));
    return 0;
}
double now() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}
}  // namespace

uint64_t peak_rss_bytes() {
    return status_kb("VmHWM") * 1024;
}

Measured measure_run(const std::string& path, const RunShape& r, int prompt_tokens,
                     int gen_tokens) {
    Measured out;
    out.rss_before = status_kb("VmRSS") * 1024;
    auto model = Model::load(path);
    ContextOptions o;
    o.n_ctx = r.n_ctx;
    o.n_seq = r.n_seq;
    o.n_ubatch = r.n_ubatch;
    o.n_threads = r.n_threads;
    o.cache_type_k = r.cache_k;
    o.cache_type_v = r.cache_v;
    Context ctx(*model, o);
    const int n_vocab = static_cast<int>(model->hparams().n_vocab);
    if (prompt_tokens + gen_tokens > ctx.n_ctx())
        fail("measure: ", prompt_tokens, " + ", gen_tokens, " tokens exceed the context of ",
             ctx.n_ctx());
    // Token ids spread over the vocabulary (the values do not change the speed).
    auto tok = [&](int i) { return static_cast<TokenId>((1 + 7919ll * i) % n_vocab); };
    // Warm-up: one token touches every weight page (a loaded model's pages are resident before
    // a user's prompt arrives), then the cache is cleared.
    ctx.decode({{tok(0), 0, 0, true}});
    ctx.clear(0);
    std::vector<BatchToken> batch;
    for (int i = 0; i < prompt_tokens; ++i) batch.push_back({tok(i), i, 0, i == prompt_tokens - 1});
    double t0 = now();
    ctx.decode(batch);
    out.prefill_tps = prompt_tokens / (now() - t0);
    t0 = now();
    for (int i = 0; i < gen_tokens; ++i)
        ctx.decode({{tok(prompt_tokens + i), prompt_tokens + i, 0, true}});
    out.decode_tps = gen_tokens / (now() - t0);
    out.peak_rss = peak_rss_bytes();
    return out;
}

}  // namespace duan::plan
