// duan run: stream a completion of a prompt, then report prefill and decode speed.
// duan chat: interactive multi-turn chat using the model's chat template.
#include <cstdio>
#include <unistd.h>

#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "llm/chat_template.h"
#include "llm/generate.h"
#include "plan/budget.h"
#include "plan/fit.h"

namespace duan::cli {

namespace {

// Streams generated tokens as UTF-8-safe text through the stop-string matcher; returns false on a
// stop string so generation ends.
struct TextSink {
    StreamDecoder dec;
    StopMatcher stop;
    std::string text;  // everything emitted
    bool stopped = false;
    TextSink(const Tokenizer& tok, const std::vector<std::string>& stops) : dec(tok), stop(stops) {}
    bool push(TokenId id) {
        emit(stop.feed(dec.push(id)));
        return !stopped;
    }
    void finish() {
        if (!stopped) emit(stop.feed(dec.flush()));
        if (!stopped) emit({stop.flush(), false});
    }
    void emit(const StopMatcher::Result& r) {
        if (!r.text.empty()) {
            std::fwrite(r.text.data(), 1, r.text.size(), stdout);
            std::fflush(stdout);
            text += r.text;
        }
        if (r.stopped) stopped = true;
    }
};

void print_stats(const GenerateStats& st) {
    std::fprintf(stderr,
                 "\n\nprefill: %d tokens in %.3f s (%.2f t/s)\ndecode:  %d tokens in %.3f s "
                 "(%.2f t/s)\nstop: %s\n",
                 st.n_prompt, st.prefill_seconds, st.prefill_tps(), st.n_generated,
                 st.decode_seconds, st.decode_tps(), st.stop_reason.c_str());
}

}  // namespace

int cmd_run(int argc, char** argv) {
    CLI::App app{"duan run: generate text from a prompt", "duan run"};
    ModelOptions mo;
    SamplingOptions so;
    std::string prompt;
    int n_predict = 128;
    bool no_bos = false, no_special = false, no_prompt_echo = false;
    mo.add(app);
    so.add(app);
    app.add_option("-p,--prompt", prompt, "prompt text")->required();
    app.add_option("-n,--n-predict", n_predict, "tokens to generate (-1 = until EOS)");
    app.add_flag("--no-bos", no_bos, "do not add BOS");
    app.add_flag("--no-parse-special", no_special, "treat special-token text as plain text");
    app.add_flag("--no-echo", no_prompt_echo, "do not print the prompt");
    std::string budget;
    app.add_option("--budget", budget,
                   "memory budget, e.g. 6G (default: 80% of RAM, at most MemAvailable)");
    if (int rc = parse(app, argc, argv); rc >= 0) return rc;

    auto model = Model::load(mo.model);
    // The plan decides before anything big is allocated: fall back to a q8_0 KV cache / shorter
    // context, or stop with the memory lines (src/plan/fit.h).
    ContextOptions co = mo.context_options();
    const auto fit = plan::check_fits(
        *model, co,
        budget.empty() ? plan::default_budget_this_machine() : plan::parse_bytes(budget));
    if (fit.adjusted) std::fprintf(stderr, "duan run: %s\n", fit.message.c_str());
    Context ctx(*model, co);
    const Tokenizer& tok = model->tokenizer();
    const SamplingParams sp = so.params();
    Sampler sampler(sp, static_cast<int>(model->hparams().n_vocab), eog_ids(tok));
    auto ids = tok.encode(prompt, !no_bos && tok.add_bos(), !no_special);
    if (ids.empty()) fail("the prompt is empty after tokenization");
    if (!no_prompt_echo) {
        std::string echo = tok.decode(ids, false);
        std::fwrite(echo.data(), 1, echo.size(), stdout);
        std::fflush(stdout);
    }
    TextSink sink(tok, sp.stop);
    auto st = generate(ctx, sampler, ids, n_predict, [&](TokenId id) { return sink.push(id); },
                       sp.ignore_eos);
    sink.finish();
    std::fprintf(stderr, "\nseed: %llu", static_cast<unsigned long long>(sampler.seed()));
    print_stats(st);
    return 0;
}

int cmd_chat(int argc, char** argv) {
    CLI::App app{"duan chat: interactive chat (empty line or /exit to quit, /reset to forget)",
                 "duan chat"};
    ModelOptions mo;
    SamplingOptions so;
    std::string tmpl, system;
    int n_predict = -1;
    mo.add(app);
    so.add(app);
    app.add_option("--chat-template", tmpl, "template name (default: from the model)");
    app.add_option("-s,--system", system, "system message");
    app.add_option("-n,--n-predict", n_predict, "max tokens per answer (-1 = until EOS)");
    std::string budget;
    app.add_option("--budget", budget,
                   "memory budget, e.g. 6G (default: 80% of RAM, at most MemAvailable)");
    if (int rc = parse(app, argc, argv); rc >= 0) return rc;

    auto model = Model::load(mo.model);
    if (tmpl.empty()) tmpl = model->chat_template_name();
    if (tmpl.empty())
        fail(mo.model, ": the model has no recognised chat template; pass --chat-template (",
             [] {
                 std::string s;
                 for (const auto& n : chat_template_names()) s += (s.empty() ? "" : ", ") + n;
                 return s;
             }(),
             ")");
    apply_chat_template(tmpl, {}, false);  // fails early on an unknown name
    ContextOptions co = mo.context_options();  // the plan decides, as for `duan run`
    const auto fit = plan::check_fits(
        *model, co,
        budget.empty() ? plan::default_budget_this_machine() : plan::parse_bytes(budget));
    if (fit.adjusted) std::fprintf(stderr, "duan chat: %s\n", fit.message.c_str());
    Context ctx(*model, co);
    const Tokenizer& tok = model->tokenizer();
    Sampler sampler(so.params(), static_cast<int>(model->hparams().n_vocab), eog_ids(tok));
    std::vector<ChatMessage> msgs;
    if (!system.empty()) msgs.push_back({"system", system});
    std::vector<TokenId> cached;  // the tokens whose K/V are in the cache, in order
    const bool interactive = isatty(0);
    for (;;) {
        if (interactive) std::fprintf(stdout, "\n> ");
        std::fflush(stdout);
        std::string line;
        if (!std::getline(std::cin, line) || line.empty() || line == "/exit") break;
        if (line == "/reset") {
            msgs.resize(system.empty() ? 0 : 1);
            continue;
        }
        msgs.push_back({"user", line});
        // Render the whole conversation, then evaluate only what differs from the cache: the
        // earlier turns' tokens are reused (prefix match), so each turn costs its own tokens.
        auto ids = tok.encode(apply_chat_template(tmpl, msgs, true), tok.add_bos(), true);
        size_t keep = 0;
        while (keep < cached.size() && keep + 1 < ids.size() && cached[keep] == ids[keep]) ++keep;
        ctx.truncate(0, static_cast<int>(keep));
        cached.resize(keep);
        std::vector<TokenId> fresh(ids.begin() + static_cast<long>(keep), ids.end());
        TextSink sink(tok, so.params().stop);
        std::vector<TokenId> generated;
        auto st = generate(ctx, sampler, fresh, n_predict, [&](TokenId id) {
            generated.push_back(id);
            return sink.push(id);
        });
        sink.finish();
        cached.insert(cached.end(), fresh.begin(), fresh.end());
        cached.insert(cached.end(), generated.begin(), generated.end());
        cached.resize(ctx.seq_len(0));  // the last sampled token may not have been evaluated
        msgs.push_back({"assistant", sink.text});
        std::fprintf(stderr, "\n[%d prompt tokens (%zu reused), %d generated, %.2f t/s]\n",
                     st.n_prompt, keep, st.n_generated, st.decode_tps());
    }
    return 0;
}

}  // namespace duan::cli
