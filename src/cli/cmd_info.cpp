// duan info MODEL: what a GGUF file holds and what it needs to run.
#include <cstdio>
#include <map>

#include "cli/commands.h"
#include "cli/options.h"
#include "llm/model.h"

namespace duan::cli {

namespace {
std::string human_bytes(double b) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4) b /= 1024, ++u;
    char s[32];
    std::snprintf(s, sizeof s, u ? "%.2f %s" : "%.0f %s", b, units[u]);
    return s;
}
}  // namespace

int cmd_info(int argc, char** argv) {
    CLI::App app{"duan info: describe a GGUF model", "duan info"};
    std::string path;
    int n_ctx = 0;
    app.add_option("model", path, "GGUF model file")->required();
    app.add_option("-c,--ctx-size", n_ctx, "context length for the RAM estimate (0 = default)");
    if (int rc = parse(app, argc, argv); rc >= 0) return rc;

    auto model = Model::load(path);
    const auto& hp = model->hparams();
    const auto& f = model->file();
    const auto& tok = model->tokenizer();
    std::printf("file:          %s\n", path.c_str());
    std::printf("size:          %s (%zu bytes), GGUF v%u, %zu tensors, %zu metadata keys\n",
                human_bytes(static_cast<double>(f.file_size())).c_str(), f.file_size(),
                f.version(), f.tensors().size(), f.meta().items().size());
    if (auto n = f.meta().get_string("general.name")) std::printf("name:          %s\n", n->c_str());
    std::printf("architecture:  %s\n", hp.arch.c_str());
    std::printf("layers:        %lld\n", static_cast<long long>(hp.n_layer));
    std::printf("embedding:     %lld\n", static_cast<long long>(hp.n_embd));
    std::printf("heads:         %lld (kv %lld, head dim %lld)\n", static_cast<long long>(hp.n_head),
                static_cast<long long>(hp.n_head_kv), static_cast<long long>(hp.head_dim));
    std::printf("feed-forward:  %lld\n", static_cast<long long>(hp.n_ff));
    std::printf("context:       %lld (trained)\n", static_cast<long long>(hp.n_ctx_train));
    std::printf("rope:          %s, base %g, freq scale %g, %lld dims\n",
                hp.rope_mode == RopeMode::Neox ? "neox" : "normal", hp.rope_base,
                hp.rope_freq_scale, static_cast<long long>(hp.n_rot));
    std::printf("rms eps:       %g\n", hp.rms_eps);
    std::printf("output:        %s\n",
                model->weights().output.data == model->weights().tok_embd.data ? "tied to token_embd"
                                                                               : "own matrix");
    std::printf("tokenizer:     %s (pre: %s), %d tokens, bos %d, eos %d%s\n", tok.model().c_str(),
                tok.pre().c_str(), tok.n_vocab(), tok.bos(), tok.eos(),
                tok.add_bos() ? ", adds BOS" : "");
    const std::string tmpl = model->chat_template_name();
    std::printf("chat template: %s\n",
                model->chat_template_source().empty() ? "none"
                : tmpl.empty()                        ? "present (not a built-in one)"
                                                      : tmpl.c_str());

    std::map<std::string, std::pair<int, uint64_t>> by_type;
    uint64_t params = 0;
    for (const auto& t : f.tensors()) {
        auto& e = by_type[dtype_name(t.type)];
        e.first++;
        e.second += t.n_bytes;
        params += static_cast<uint64_t>(t.n_elements());
    }
    std::printf("parameters:    %.3f M\n", params / 1e6);
    std::printf("tensors by type:\n");
    for (const auto& [name, e] : by_type)
        std::printf("  %-6s %4d tensors  %s\n", name.c_str(), e.first,
                    human_bytes(static_cast<double>(e.second)).c_str());

    // RAM to run: the weights are mapped (they count as they are touched), plus the KV cache for
    // the context, plus per-token scratch for a 512-token batch, plus the logits.
    const int64_t ctx = n_ctx > 0 ? n_ctx : std::min<int64_t>(hp.n_ctx_train, 4096);
    const double kv = 2.0 * hp.n_layer * ctx * hp.kv_dim() * 2;  // F16 K and V
    const double scratch =
        512.0 * 4 * (2 * hp.n_embd + hp.q_dim() + 2 * hp.kv_dim() + hp.q_dim() + 2 * hp.n_ff) +
        4.0 * hp.n_vocab * 2;
    std::printf("RAM to load:   %s = weights %s + KV cache %s (ctx %lld, f16) + scratch %s\n",
                human_bytes(static_cast<double>(f.file_size()) + kv + scratch).c_str(),
                human_bytes(static_cast<double>(f.file_size())).c_str(), human_bytes(kv).c_str(),
                static_cast<long long>(ctx), human_bytes(scratch).c_str());
    return 0;
}

}  // namespace duan::cli
