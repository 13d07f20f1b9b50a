// duan image: Stable Diffusion 1.x text-to-image from a single-file checkpoint (safetensors, LDM
// key names), on the CPU. Writes a PNG with the A1111-style "parameters" text chunk.
//   duan image -m sd15.safetensors -p "a red ball on the grass" -o out.png [--steps 20 ...]
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "core/thread_pool.h"
#include "diffusion/npy.h"
#include "diffusion/pipeline.h"
#include "diffusion/png.h"

namespace duan::cli {

namespace {

// SD checkpoints carry no tokenizer: CLIP's merges.txt comes from --clip-merges, $DUAN_CLIP_MERGES,
// or a merges.txt next to the checkpoint (or in its clip/ folder).
std::string find_merges(const std::string& flag, const std::string& ckpt) {
    namespace fs = std::filesystem;
    if (!flag.empty()) return flag;
    if (const char* e = std::getenv("DUAN_CLIP_MERGES"); e && *e) return e;
    const fs::path dir = fs::path(ckpt).parent_path();
    for (const fs::path& p : {dir / "merges.txt", dir / "clip" / "merges.txt"})
        if (fs::exists(p)) return p.string();
    fail(
        "CLIP tokenizer not found: SD checkpoints do not include it. Pass --clip-merges "
        "PATH/merges.txt (OpenAI CLIP's BPE merges, as in openai/clip-vit-large-patch14), set "
        "DUAN_CLIP_MERGES, or put merges.txt next to ",
        ckpt);
}

const char* a1111_sampler(diffusion::Sampler s, diffusion::Scheduler sch) {
    using diffusion::Sampler;
    switch (s) {
        case Sampler::Euler:
            return "Euler";
        case Sampler::EulerA:
            return "Euler a";
        case Sampler::DpmPP2M:
            return sch == diffusion::Scheduler::Karras ? "DPM++ 2M Karras" : "DPM++ 2M";
        case Sampler::Ddim:
            return "DDIM";
        case Sampler::Lcm:
            return "LCM";
    }
    return "?";
}

std::string fmt_float(float v) {
    std::ostringstream os;
    os << v;
    return os.str();
}

}  // namespace

int cmd_image(int argc, char** argv) {
    CLI::App app{"Generate an image with a Stable Diffusion 1.x checkpoint (CPU)", "duan image"};
    std::string model, prompt, negative, out = "output.png", save_latent, sampler = "euler_a",
                                         scheduler, rng = "cuda", merges;
    long long seed = 42;
    int steps = 20, width = 512, height = 512, threads = 0;
    float cfg = 7.0f;
    app.add_option("-m,--model", model, "SD 1.x checkpoint (.safetensors, F32/F16/BF16)")
        ->required();
    app.add_option("-p,--prompt", prompt, "prompt")->required();
    app.add_option("-n,--negative-prompt", negative, "negative prompt");
    app.add_option("-o,--output", out, "output PNG")->capture_default_str();
    app.add_option("--seed", seed, "seed (image b of a batch would use seed+b)")
        ->capture_default_str();
    app.add_option("--steps", steps, "sampling steps")
        ->capture_default_str()
        ->check(CLI::Range(1, 1000));
    app.add_option("--cfg", cfg, "classifier-free guidance scale")->capture_default_str();
    app.add_option("-W,--width", width, "width, multiple of 64")->capture_default_str();
    app.add_option("-H,--height", height, "height, multiple of 64")->capture_default_str();
    app.add_option("--sampler", sampler, "euler|euler_a|dpm++2m|ddim|lcm")->capture_default_str();
    app.add_option("--scheduler", scheduler,
                   "discrete|karras|simple|lcm (default: discrete; ddim: simple; lcm: lcm)");
    app.add_option("--rng", rng, "cpu (PyTorch CPU randn) | cuda (Philox, A1111/CUDA compatible)")
        ->capture_default_str();
    app.add_option("--save-latent", save_latent, "also write the final latent as .npy");
    app.add_option("--clip-merges", merges, "CLIP BPE merges.txt (SD checkpoints carry none)");
    app.add_option("-t,--threads", threads, "threads (default: all cores)");
    app.set_help_flag("-h,--help", "show this help");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }

    diffusion::Txt2ImgParams p;
    p.prompt = prompt;
    p.negative = negative;
    if (seed < 0)
        seed = static_cast<long long>(std::chrono::system_clock::now().time_since_epoch().count() &
                                      0x7fffffff);
    p.seed = static_cast<uint64_t>(seed);
    p.steps = steps;
    p.cfg = cfg;
    p.width = width;
    p.height = height;
    p.sampler = diffusion::sampler_from_name(sampler);
    if (!scheduler.empty()) p.scheduler = diffusion::scheduler_from_name(scheduler);
    p.rng = rng;
    (void)diffusion::make_rng(rng, 0);  // validate before the slow load
    if (width <= 0 || height <= 0 || width % 64 || height % 64)
        fail("-W/-H must be positive multiples of 64, got ", width, "x", height);

    const auto t0 = std::chrono::steady_clock::now();
    diffusion::StableDiffusion sd(model, find_merges(merges, model),
                                  threads > 0 ? threads : default_thread_count());
    const auto t1 = std::chrono::steady_clock::now();
    std::fprintf(stderr, "loaded %s (%s) in %.2f s\n", model.c_str(),
                 sd.checkpoint().weight_type().c_str(),
                 std::chrono::duration<double>(t1 - t0).count());

    diffusion::Txt2ImgHooks hooks;
    double sampled = 0;
    hooks.progress = [&](int k, int n, double s) {
        sampled += s;
        const double per = sampled / k;
        std::fprintf(stderr, "\rstep %d/%d, %.2f s/step, ETA %.1f s   ", k, n, per, per * (n - k));
        if (k == n) std::fprintf(stderr, "\n");
        std::fflush(stderr);
    };
    const diffusion::Txt2ImgResult r = sd.txt2img(p, hooks);
    const auto t2 = std::chrono::steady_clock::now();

    const diffusion::Scheduler sch = p.scheduler.value_or(diffusion::default_scheduler(p.sampler));
    std::string params = prompt + "\n";
    if (!negative.empty()) params += "Negative prompt: " + negative + "\n";
    params += "Steps: " + std::to_string(steps) + ", Sampler: " + a1111_sampler(p.sampler, sch) +
              ", CFG scale: " + fmt_float(cfg) + ", Seed: " + std::to_string(p.seed) +
              ", Size: " + std::to_string(width) + "x" + std::to_string(height) +
              ", Model: " + std::filesystem::path(model).stem().string();
    if (rng == "cpu") params += ", RNG: CPU";
    params += ", Version: duan";
    diffusion::write_png(out, r.rgb.data(), width, height, {{"parameters", params}});
    if (!save_latent.empty())
        diffusion::npy_write(save_latent, {1, 4, height / 8, width / 8}, r.latent.data());

    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    std::fprintf(stderr, "wrote %s (%dx%d) in %.2f s (sampling+decode), peak RSS %.1f MiB\n",
                 out.c_str(), width, height, std::chrono::duration<double>(t2 - t1).count(),
                 static_cast<double>(ru.ru_maxrss) / 1024.0);
    return 0;
}

}  // namespace duan::cli
