// Options shared by the commands that load a model and sample from it.
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "llm/context.h"
#include "llm/model.h"
#include "llm/sampler.h"

namespace duan::cli {

struct ModelOptions {
    std::string model;
    int n_ctx = 0;
    int threads = 0;
    std::string cache_type_k = "f16", cache_type_v = "f16";
    void add(CLI::App& app);
    ContextOptions context_options() const;
};

struct SamplingOptions {
    SamplingParams p;
    long long seed = -1;
    void add(CLI::App& app);
    SamplingParams params() const;
};

// Every end-of-generation token id of the vocabulary (what --ignore-eos suppresses).
std::vector<TokenId> eog_ids(const Tokenizer& tok);

// CLI11 parse with duan's conventions (help to stdout, errors to stderr); returns -1 to go on,
// else an exit code.
int parse(CLI::App& app, int argc, char** argv);

}  // namespace duan::cli
