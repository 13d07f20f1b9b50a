// duan image --cloud URL: the image from a `duan serve --sd-model` server.
//  --split none: POST /v1/images/generations, the PNG comes back (base64 in JSON).
//  --split vae:  POST /v1/images/latents, only the final latent comes back (F16: 32 KB for
//                512x512); this device decodes it with the VAE of its own checkpoint (-m), loading
//                nothing else of the model. The same settings give the same PNG as a local run.
// With --init IN.png --strength S the PNG file is sent as the request's "image" (img2img runs on
// the server). The device refuses a latent whose scale is not its VAE's (SDXL vs SD 1.x/2.x).
// Both print the bytes received and the time spent on each side.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>

#include "cli/image_cloud.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "diffusion/npy.h"
#include "diffusion/parameters.h"
#include "diffusion/png.h"
#include "diffusion/sd_config.h"
#include "diffusion/vae.h"
#include "diffusion/weights.h"

#ifdef DUAN_HAS_SERVER
#include "serve/base64.h"
#include "serve/image_client.h"
#endif

namespace duan::cli {

#ifndef DUAN_HAS_SERVER
int run_cloud_image(const CloudImageJob&) {
    fail("--cloud: this duan was built without the HTTP client (DUAN_SERVER=OFF)");
}
#else

namespace {
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

nlohmann::json request_body(const CloudImageJob& job) {
    const diffusion::Txt2ImgParams& p = job.params;
    nlohmann::json j = {
        {"prompt", p.prompt}, {"size", std::to_string(p.width) + "x" + std::to_string(p.height)},
        {"seed", p.seed},     {"steps", p.steps},
        {"cfg_scale", p.cfg}, {"sampler", diffusion::sampler_name(p.sampler)},
        {"rng", p.rng}};
    if (!p.negative.empty()) j["negative_prompt"] = p.negative;
    if (p.scheduler) {
        const char* names[] = {"discrete", "karras", "simple", "lcm"};
        j["scheduler"] = names[static_cast<int>(*p.scheduler)];
    }
    if (!job.init_png.empty()) {  // img2img: the server encodes the init image
        j["image"] = serve::base64_encode(job.init_png.data(), job.init_png.size());
        j["strength"] = job.strength;
    }
    return j;
}

void print_server(const serve::ServerTimings& s, double wall_s, int steps) {
    const double server = s.queue_s + s.text_s + s.sample_s + s.decode_s;
    std::fprintf(stderr,
                 "cloud:  queue %.2f s, text encoding %.2f s, sampling %.2f s (%d steps, %.2f "
                 "s/step)%s\n",
                 s.queue_s, s.text_s, s.sample_s, steps, steps ? s.sample_s / steps : 0.0,
                 s.decode_s > 0 ? "" : ", no VAE decode");
    if (s.decode_s > 0) std::fprintf(stderr, "cloud:  VAE decode + PNG %.2f s\n", s.decode_s);
    std::fprintf(stderr, "network: request to last byte %.2f s (%.2f s beyond the server's work)\n",
                 wall_s, std::max(0.0, wall_s - server));
}
}  // namespace

int run_cloud_image(const CloudImageJob& job) {
    const diffusion::Txt2ImgParams& p = job.params;
    serve::ImageClientOptions o;
    o.url = job.url;
    o.api_key = job.api_key;
    const nlohmann::json body = request_body(job);
    std::optional<float> denoise;  // A1111's "Denoising strength" (img2img)
    if (!job.init_png.empty()) denoise = job.strength;

    if (!job.split_vae) {
        if (!job.save_latent.empty())
            fail("--save-latent needs the latent: use --split vae (or run locally)");
        std::fprintf(stderr, "cloud %s: generating %dx%d, %d steps ...\n", job.url.c_str(), p.width,
                     p.height, p.steps);
        const serve::PngReply r = serve::request_png(o, body);
        std::ofstream f(job.out, std::ios::binary);
        if (!f.write(reinterpret_cast<const char*>(r.png.data()),
                     static_cast<std::streamsize>(r.png.size())))
            fail(job.out, ": cannot write");
        print_server(r.server, r.wall_s, p.steps);
        std::fprintf(stderr,
                     "sent %zu bytes, received %zu bytes (PNG %zu bytes, base64 in JSON); wrote "
                     "%s\n",
                     r.request_bytes, r.body_bytes, r.png.size(), job.out.c_str());
        return 0;
    }

    if (job.model.empty())
        fail(
            "--split vae decodes on this device: give -m with the device's checkpoint (its VAE "
            "must be the server's)");
    // Only the VAE decoder of the device's checkpoint is loaded (no CLIP, no UNet).
    const auto t0 = Clock::now();
    diffusion::Checkpoint ck(job.model);
    diffusion::VaeDecoder vae(ck);
    // The device's variant from its UNet's shapes (nothing of the UNet is loaded): its latent
    // scale must be the server's, or its VAE is of another kind (SD 1.x/2.x vs SDXL).
    float device_scale = 0;
    std::string device_variant = "unknown";
    try {
        const diffusion::SdVersion v = diffusion::unet_config_from(ck).version;
        device_scale = diffusion::latent_scale_of(v);
        device_variant = diffusion::sd_variant_id(v);
    } catch (const Error&) {  // a VAE-only file: nothing to check against
    }
    ThreadPool pool(job.n_threads);
    const double load_s = since(t0);

    std::fprintf(stderr, "cloud %s: text encoding + %d steps for %dx%d, latent only ...\n",
                 job.url.c_str(), p.steps, p.width, p.height);
    const serve::LatentReply r = serve::request_latent(o, body);
    serve::check_latent_scale(r, device_scale, job.model, device_variant);
    if (r.latent_h * 8 != p.height || r.latent_w * 8 != p.width)
        fail("cloud ", job.url, ": the latent is for ", r.latent_w * 8, "x", r.latent_h * 8,
             ", asked for ", p.width, "x", p.height);

    const auto t1 = Clock::now();
    const std::vector<float> img = vae.decode(pool, r.z, r.latent_h, r.latent_w);
    const std::vector<uint8_t> rgb = diffusion::image_to_rgb8(img, p.width, p.height);
    const double decode_s = since(t1);
    const std::string params =
        diffusion::a1111_parameters(p, std::filesystem::path(job.model).stem().string(), denoise);
    const std::vector<uint8_t> png =
        diffusion::encode_png(rgb.data(), p.width, p.height, {{"parameters", params}});
    std::ofstream f(job.out, std::ios::binary);
    if (!f.write(reinterpret_cast<const char*>(png.data()),
                 static_cast<std::streamsize>(png.size())))
        fail(job.out, ": cannot write");
    if (!job.save_latent.empty()) {
        std::vector<float> lat = r.z;
        const float scale = r.scale > 0 ? r.scale : device_scale > 0 ? device_scale : 0.18215f;
        for (auto& v : lat) v *= scale;
        diffusion::npy_write(job.save_latent, {1, 4, r.latent_h, r.latent_w}, lat.data());
    }

    print_server(r.server, r.wall_s, p.steps);
    std::fprintf(stderr, "device: VAE load %.2f s, VAE decode %.2f s, peak RSS %.0f MiB\n", load_s,
                 decode_s, peak_rss_mib());
    std::fprintf(stderr,
                 "sent %zu bytes, received %zu bytes (%s latent 1x4x%dx%d) instead of a %zu-byte "
                 "PNG; wrote %s\n",
                 r.request_bytes, r.body_bytes, serve::latent_format_name(r.format), r.latent_h,
                 r.latent_w, png.size(), job.out.c_str());
    return 0;
}

#endif

}  // namespace duan::cli
