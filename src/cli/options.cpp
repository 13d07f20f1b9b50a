#include "cli/options.h"

#include "core/error.h"

namespace duan::cli {

void ModelOptions::add(CLI::App& app) {
    app.add_option("-m,--model", model, "GGUF model file")->required();
    app.add_option("-c,--ctx-size", n_ctx, "context length (0 = model's, at most 4096)");
    app.add_option("-t,--threads", threads, "threads (0 = all cores)");
    app.add_option("--cache-type-k", cache_type_k, "KV cache type for K: f16, q8_0, q4_0");
    app.add_option("--cache-type-v", cache_type_v, "KV cache type for V: f16, q8_0, q4_0");
}

ContextOptions ModelOptions::context_options() const {
    ContextOptions o;
    o.n_ctx = n_ctx;
    o.n_threads = threads;
    auto kt = dtype_from_name(cache_type_k), vt = dtype_from_name(cache_type_v);
    if (!kt) fail("--cache-type-k: unknown type '", cache_type_k, "'");
    if (!vt) fail("--cache-type-v: unknown type '", cache_type_v, "'");
    o.cache_type_k = *kt;
    o.cache_type_v = *vt;
    return o;
}

void SamplingOptions::add(CLI::App& app) {
    app.add_option("--temp", p.temperature, "temperature (0 = greedy)");
    app.add_option("--top-k", p.top_k, "top-k (0 = off)");
    app.add_option("--top-p", p.top_p, "top-p (1 = off)");
    app.add_option("--min-p", p.min_p, "min-p (0 = off)");
    app.add_option("--repeat-penalty", p.repeat_penalty, "repetition penalty (1 = off)");
    app.add_option("--repeat-last-n", p.repeat_last_n, "tokens considered for penalties");
    app.add_option("--presence-penalty", p.presence_penalty, "presence penalty");
    app.add_option("--frequency-penalty", p.frequency_penalty, "frequency penalty");
    app.add_option("--seed", seed, "RNG seed (-1 = random)");
    app.add_option("--stop", p.stop, "stop string (repeatable)");
    app.add_flag("--ignore-eos", p.ignore_eos, "keep generating past end-of-sequence");
}

SamplingParams SamplingOptions::params() const {
    SamplingParams q = p;
    if (seed >= 0) q.seed = static_cast<uint64_t>(seed);
    return q;
}

std::vector<TokenId> eog_ids(const Tokenizer& tok) {
    std::vector<TokenId> v;
    for (TokenId id = 0; id < tok.n_vocab(); ++id)
        if (tok.is_eog(id)) v.push_back(id);
    return v;
}

int parse(CLI::App& app, int argc, char** argv) {
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    return -1;
}

}  // namespace duan::cli
