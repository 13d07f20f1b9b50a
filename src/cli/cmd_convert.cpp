// duan convert: Hugging Face checkpoint folder → GGUF (llama, qwen2, qwen3; llm/convert_hf.h).
#include <cstdio>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "diffusion/sd_gguf.h"
#include "llm/convert_hf.h"

namespace duan::cli {

int cmd_convert(int argc, char** argv) {
    CLI::App app{
        "duan convert: convert a Hugging Face checkpoint (config.json, safetensors, "
        "tokenizer.json) to GGUF",
        "duan convert"};
    std::string dir, out;
    ConvertOptions o;
    bool verbose = false, sd = false, keep_conv_f16 = false;
    app.add_option("hf_dir", dir,
                   "model folder (with --sd: SD checkpoint file or diffusers folder)")
        ->required();
    app.add_option("output", out, "output GGUF")->required();
    app.add_option("--type", o.type,
                   "f32, f16 (default), bf16, q8_0, or a quantize mix (q4_k_m, …)");
    app.add_flag("--vocab-only", o.vocab_only, "write only the tokenizer");
    app.add_option("-t,--threads", o.n_threads, "threads for quantize mixes (0 = all cores)");
    app.add_flag("-v,--verbose", verbose, "print each tensor");
    app.add_flag(
        "--sd", sd,
        "Stable Diffusion checkpoint (.safetensors, diffusers folder) -> GGUF; --type "
        "f32, f16, q8_0, q4_0, q4_k (see docs/DIFFUSION.md for which tensors keep F16/F32)");
    app.add_flag("--keep-conv-f16", keep_conv_f16,
                 "with --sd: keep UNet convs F16 (stable-diffusion.cpp's layout; more memory)");
    if (int rc = parse(app, argc, argv); rc >= 0) return rc;
    if (sd) {
        diffusion::SdConvertOptions so;
        const auto t = dtype_from_name(o.type);
        if (!t) fail("unknown --type '", o.type, "' for --sd; choose f32, f16, q8_0, q4_0 or q4_k");
        so.type = *t;
        so.quantize_convs = !keep_conv_f16;
        if (verbose) so.log = [](const std::string& l) { std::fprintf(stderr, "%s\n", l.c_str()); };
        diffusion::convert_sd_to_gguf(dir, out, so);
        std::printf("%s: written\n", out.c_str());
        return 0;
    }
    if (verbose) o.log = [](const std::string& l) { std::fprintf(stderr, "%s\n", l.c_str()); };
    convert_hf(dir, out, o);
    std::printf("%s: written\n", out.c_str());
    return 0;
}

}  // namespace duan::cli
