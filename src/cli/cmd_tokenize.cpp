// duan tokenize: token ids (or pieces) of a text, on one line.
// duan logits: the engine's logits as JSON, in the schema of testdata/golden.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "llm/logits_report.h"

namespace duan::cli {

namespace {
std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(path, ": cannot open");
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<int> parse_int_list(const std::string& s, const char* what) {
    std::vector<int> v;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) {
        if (item.empty()) continue;
        try {
            size_t used = 0;
            v.push_back(std::stoi(item, &used));
            if (used != item.size()) throw std::invalid_argument(item);
        } catch (const std::exception&) {
            fail(what, ": '", item, "' is not an integer");
        }
    }
    return v;
}
}  // namespace

int cmd_tokenize(int argc, char** argv) {
    CLI::App app{"duan tokenize: print the token ids of a text", "duan tokenize"};
    std::string model, prompt, file;
    bool ids_only = false, no_bos = false, no_special = false;
    app.add_option("-m,--model", model, "GGUF model (or vocab-only) file")->required();
    auto* p = app.add_option("-p,--prompt", prompt, "text");
    auto* f = app.add_option("-f,--file", file, "read the text from a file");
    p->excludes(f);
    app.add_flag("--ids", ids_only, "print ids only (default: id and piece)");
    app.add_flag("--no-bos", no_bos, "do not add BOS");
    app.add_flag("--no-parse-special", no_special, "special-token text is plain text");
    if (int rc = parse(app, argc, argv); rc >= 0) return rc;
    if (!*p && !*f) fail("give the text with -p TEXT or -f FILE");
    const std::string text = *f ? read_file(file) : prompt;

    auto gf = gguf::File::open(model);
    auto tok = Tokenizer::from_gguf(gf->meta(), model);
    auto ids = tok->encode(text, !no_bos && tok->add_bos(), !no_special);
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) {
        if (i) line += ' ';
        line += std::to_string(ids[i]);
        if (!ids_only) line += ":'" + tok->token_to_piece(ids[i], true) + "'";
    }
    std::printf("%s\n", line.c_str());
    return 0;
}

int cmd_logits(int argc, char** argv) {
    CLI::App app{"duan logits: logits as JSON (the schema of testdata/golden)", "duan logits"};
    ModelOptions mo;
    std::string tokens, prompt, full;
    int greedy = 16;
    mo.add(app);
    auto* t = app.add_option("--tokens", tokens, "comma-separated token ids");
    auto* p = app.add_option("-p,--prompt", prompt, "text (tokenized with BOS)");
    t->excludes(p);
    app.add_option("--greedy", greedy, "greedy steps after the prompt");
    app.add_option("--full", full, "positions whose whole logits vector is printed, e.g. 0,17");
    if (int rc = parse(app, argc, argv); rc >= 0) return rc;
    auto model = Model::load(mo.model);
    std::vector<TokenId> ids;
    if (*t) {
        for (int v : parse_int_list(tokens, "--tokens")) ids.push_back(v);
    } else if (*p) {
        ids = model->tokenizer().encode(prompt, model->tokenizer().add_bos(), true);
    } else {
        fail("give the prompt with --tokens IDS or -p TEXT");
    }
    ContextOptions co = mo.context_options();
    Context ctx(*model, co);
    auto j = logits_report(ctx, ids, greedy, parse_int_list(full, "--full"));
    std::printf("%s\n", j.dump().c_str());
    return 0;
}

}  // namespace duan::cli
