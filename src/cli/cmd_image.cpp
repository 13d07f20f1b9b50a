// duan image: Stable Diffusion 1.x from a single-file checkpoint (safetensors, LDM key names), on
// the CPU: text to image, or image to image with --init. Writes a PNG with the A1111-style
// "parameters" text chunk. With --cloud the image (or, with --split vae, only its final latent)
// comes from a `duan serve --sd-model` server (cmd_image_cloud.cpp). See docs/DIFFUSION.md.
//   duan image -m sd15.safetensors -p "a red ball on the grass" -o out.png [--steps 20 ...]
//   duan image -m sd15.safetensors -p "..." --init in.png --strength 0.6 -o out.png
//   duan image -m sd15.safetensors -p "..." --cloud http://host:8080/v1 --split vae -o out.png
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "cli/image_cloud.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "diffusion/img2img.h"
#include "diffusion/npy.h"
#include "diffusion/parameters.h"
#include "diffusion/pipeline.h"
#include "diffusion/png.h"
#include "diffusion/png_read.h"
#include "diffusion/sd_files.h"

namespace duan::cli {

double peak_rss_mib() {
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

int cmd_image(int argc, char** argv) {
    CLI::App app{"Generate an image with a Stable Diffusion 1.x, 2.x or SDXL checkpoint (CPU)",
                 "duan image"};
    std::string model, prompt, negative, out = "output.png", save_latent, sampler = "euler_a",
                                         scheduler, rng = "cuda", merges, init, cloud, cloud_key,
                                         split = "none";
    long long seed = 42;
    int steps = 20, width = 512, height = 512, threads = 0;
    float cfg = 7.0f, strength = 0.75f;
    bool v_pred = false;
    app.add_option(
        "-m,--model", model,
        "SD 1.x/2.x/SDXL checkpoint: .safetensors (F32/F16/BF16), .gguf from `duan convert --sd` "
        "(F16/Q8_0/Q4_0/Q4_K), or a diffusers folder; with --cloud --split vae, "
        "the device's checkpoint whose VAE decodes");
    app.add_option("-p,--prompt", prompt, "prompt")->required();
    app.add_option("-n,--negative-prompt", negative, "negative prompt");
    app.add_option("-o,--output", out, "output PNG")->capture_default_str();
    app.add_option("--seed", seed, "seed (image b of a batch would use seed+b; < 0: random)")
        ->capture_default_str();
    app.add_option("--steps", steps, "sampling steps")
        ->capture_default_str()
        ->check(CLI::Range(1, 1000));
    app.add_option("--cfg", cfg, "classifier-free guidance scale")->capture_default_str();
    auto* w_opt = app.add_option("-W,--width", width, "width, multiple of 64 (--init: the image's)")
                      ->capture_default_str();
    auto* h_opt =
        app.add_option("-H,--height", height, "height, multiple of 64 (--init: the image's)")
            ->capture_default_str();
    app.add_option("--sampler", sampler, "euler|euler_a|dpm++2m|ddim|lcm")->capture_default_str();
    app.add_option("--scheduler", scheduler,
                   "discrete|karras|simple|lcm (default: discrete; ddim: simple; lcm: lcm)");
    app.add_option("--rng", rng, "cpu (PyTorch CPU randn) | cuda (Philox, A1111/CUDA compatible)")
        ->capture_default_str();
    app.add_flag("--v-pred", v_pred,
                 "the model predicts v (SD 2.x 768-v checkpoints; nothing in the file says so)");
    app.add_option("--init", init, "img2img: start from this PNG (its size is the output size)");
    app.add_option("--strength", strength,
                   "img2img: how much to change the init image, 0 (none) .. 1 (all); "
                   "int(steps*strength)+1 steps run")
        ->capture_default_str()
        ->check(CLI::Range(0.0f, 1.0f));
    app.add_option("--save-latent", save_latent, "also write the final latent as .npy");
    app.add_option("--clip-merges", merges, "CLIP BPE merges.txt (SD checkpoints carry none)");
    app.add_option("--cloud", cloud,
                   "generate on a duan server instead, e.g. http://host:8080/v1 (docs/SERVING.md)");
    app.add_option("--cloud-key", cloud_key, "API key for --cloud (or $DUAN_CLOUD_KEY)");
    app.add_option("--split", split,
                   "with --cloud: none (the server sends the PNG) | vae (the server sends the "
                   "final latent, this device decodes it with the VAE of -m)")
        ->capture_default_str()
        ->check(CLI::IsMember({"none", "vae"}));
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
    p.sampler = diffusion::sampler_from_name(sampler);
    if (!scheduler.empty()) p.scheduler = diffusion::scheduler_from_name(scheduler);
    p.rng = rng;
    p.v_prediction = v_pred;
    (void)diffusion::make_rng(rng, 0);  // validate before the slow load

    // The init image is checked before anything slow: not a PNG, or a size the model cannot
    // take, is an error naming the file.
    diffusion::Rgb8Image init_img;
    if (!init.empty()) {
        init_img = diffusion::read_png(init);
        if (init_img.width % 64 != 0 || init_img.height % 64 != 0)
            fail(init, ": the init image is ", init_img.width, "x", init_img.height,
                 " pixels; img2img needs width and height that are multiples of 64 (the VAE "
                 "needs multiples of 8, the UNet latents that are multiples of 8); crop or "
                 "resize it first");
        if ((w_opt->count() && width != init_img.width) ||
            (h_opt->count() && height != init_img.height))
            fail(init, ": the init image is ", init_img.width, "x", init_img.height,
                 " but -W/-H ask for ", width, "x", height, "; duan does not resize it");
        width = init_img.width;
        height = init_img.height;
    }
    if (width <= 0 || height <= 0 || width % 64 || height % 64)
        fail("-W/-H must be positive multiples of 64, got ", width, "x", height);
    p.width = width;
    p.height = height;

    const int n_threads = threads > 0 ? threads : default_thread_count();
    if (!cloud.empty()) {
        CloudImageJob job;
        job.url = cloud;
        job.api_key = cloud_key;
        if (job.api_key.empty())
            if (const char* e = std::getenv("DUAN_CLOUD_KEY")) job.api_key = e;
        job.split_vae = split == "vae";
        job.model = model;
        job.out = out;
        job.save_latent = save_latent;
        job.params = p;
        job.n_threads = n_threads;
        if (!init.empty()) {  // the file as it is: the server decodes it as read_png did here
            std::ifstream f(init, std::ios::binary);
            if (!f) fail(init, ": cannot read");
            job.init_png.assign(std::istreambuf_iterator<char>(f),
                                std::istreambuf_iterator<char>());
            job.strength = strength;
        }
        return run_cloud_image(job);
    }
    if (split != "none") fail("--split ", split, " needs --cloud URL");
    if (model.empty()) fail("-m/--model is required (or --cloud URL)");

    const auto t0 = std::chrono::steady_clock::now();
    diffusion::StableDiffusion sd(model, diffusion::find_clip_merges(merges, model), n_threads);
    const auto t1 = std::chrono::steady_clock::now();
    std::fprintf(stderr, "loaded %s (%s) in %.2f s\n", model.c_str(),
                 sd.checkpoint().weight_type().c_str(),
                 std::chrono::duration<double>(t1 - t0).count());

    diffusion::Txt2ImgHooks hooks;
    double sampled = 0;
    hooks.progress = [&](int k, int n, double s) {
        sampled += s;
        const double per = sampled / k;
        std::fprintf(stderr, "\rstep %d/%d, %.2f s/step, ETA %.1f s, peak RSS %.0f MiB   ", k, n,
                     per, per * (n - k), peak_rss_mib());
        if (k == n) std::fprintf(stderr, "\n");
        std::fflush(stderr);
    };
    diffusion::Txt2ImgResult r;
    std::optional<float> denoise;
    if (!init.empty()) {
        diffusion::Img2ImgParams ip;
        static_cast<diffusion::Txt2ImgParams&>(ip) = p;
        ip.init_rgb = std::move(init_img.rgb);
        ip.strength = strength;
        denoise = strength;
        const int run =
            static_cast<int>(diffusion::img2img_sigmas(
                                 std::vector<float>(static_cast<size_t>(steps) + 1, 1.0f), strength)
                                 .size() -
                             1);
        std::fprintf(stderr, "img2img: strength %g, %d of %d steps\n", strength, run, steps);
        r = sd.img2img(ip, hooks);
    } else {
        r = sd.txt2img(p, hooks);
    }
    const auto t2 = std::chrono::steady_clock::now();

    const std::string params =
        diffusion::a1111_parameters(p, std::filesystem::path(model).stem().string(), denoise);
    diffusion::write_png(out, r.rgb.data(), width, height, {{"parameters", params}});
    if (!save_latent.empty())
        diffusion::npy_write(save_latent, {1, 4, height / 8, width / 8}, r.latent.data());

    std::fprintf(stderr, "wrote %s (%dx%d) in %.2f s (sampling+decode), peak RSS %.1f MiB\n",
                 out.c_str(), width, height, std::chrono::duration<double>(t2 - t1).count(),
                 peak_rss_mib());
    return 0;
}

}  // namespace duan::cli
