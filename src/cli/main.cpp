// duan — run generative models on the device. `duan <command> --help` for each command.
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/commands.h"
#include "core/error.h"

namespace {

struct Command {
    const char* name;
    int (*fn)(int, char**);
    const char* help;
};

const Command kCommands[] = {
    {"run", duan::cli::cmd_run, "generate text from a prompt"},
    {"chat", duan::cli::cmd_chat, "interactive multi-turn chat with the model's template"},
    {"info", duan::cli::cmd_info, "describe a GGUF model: architecture, tokenizer, tensors, RAM"},
    {"tokenize", duan::cli::cmd_tokenize, "print the token ids of a text"},
    {"logits", duan::cli::cmd_logits, "print logits as JSON (the golden-test schema)"},
};

void usage(FILE* out) {
    std::fprintf(out, "usage: duan <command> [options]\n\ncommands:\n");
    for (const auto& c : kCommands) std::fprintf(out, "  %-10s %s\n", c.name, c.help);
    std::fprintf(out, "\n`duan <command> --help` shows a command's options.\n");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const std::string cmd = argv[1];
    if (cmd == "-h" || cmd == "--help" || cmd == "help") {
        usage(stdout);
        return 0;
    }
    for (const auto& c : kCommands) {
        if (cmd == c.name) {
            try {
                return c.fn(argc - 1, argv + 1);
            } catch (const duan::Error& e) {
                std::fprintf(stderr, "duan %s: %s\n", c.name, e.what());
                return 1;
            } catch (const std::bad_alloc&) {
                std::fprintf(stderr, "duan %s: out of memory\n", c.name);
                return 1;
            }
        }
    }
    std::fprintf(stderr, "duan: unknown command '%s'\n\n", cmd.c_str());
    usage(stderr);
    return 2;
}
