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

#ifdef DUAN_HAS_SERVER
}  // namespace
namespace duan {
int cmd_serve(int argc, char** argv);  // src/serve/cmd_serve.cpp
}
namespace {
#endif

const Command kCommands[] = {
    {"run", duan::cli::cmd_run, "generate text from a prompt"},
    {"chat", duan::cli::cmd_chat, "interactive multi-turn chat with the model's template"},
    {"info", duan::cli::cmd_info, "describe a GGUF model: architecture, tokenizer, tensors, RAM"},
    {"tokenize", duan::cli::cmd_tokenize, "print the token ids of a text"},
    {"logits", duan::cli::cmd_logits, "print logits as JSON (the golden-test schema)"},
    {"quantize", duan::cli::cmd_quantize, "quantize a GGUF model (Q4_K_M, Q8_0, ...)"},
    {"imatrix", duan::cli::cmd_imatrix, "collect an importance matrix for quantization"},
    {"perplexity", duan::cli::cmd_perplexity, "perplexity / KL divergence over a text"},
    {"convert", duan::cli::cmd_convert, "convert a Hugging Face checkpoint to GGUF"},
    {"synth", duan::cli::cmd_synth, "write a random-weight GGUF of a real model's shape"},
    {"bench", duan::cli::cmd_bench, "prefill/decode speed, peak RSS, memory bandwidth roofline"},
    {"plan", duan::cli::cmd_plan, "will a model fit a device's memory, and how fast will it run"},
    {"image", duan::cli::cmd_image, "text to image with Stable Diffusion"},
#ifdef DUAN_HAS_SERVER
    {"serve", duan::cmd_serve, "OpenAI-compatible server with device/cloud routing"},
#endif
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
