// `duan serve`: an OpenAI-compatible server on a local model, optionally routing to a cloud
// endpoint. See docs/SERVING.md.
#include <pthread.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "core/error.h"
#include "core/thread_pool.h"
#include "diffusion/pipeline.h"
#include "diffusion/sd_files.h"
#include "hybrid/fake_engine.h"
#include "hybrid/local_engine.h"
#include "serve/cloud_client.h"
#include "serve/http_server.h"
#include "serve/image_api.h"

namespace duan {

// argv[0] is the command name ("serve"); the options follow.
int cmd_serve(int argc, char** argv) {
    CLI::App app{"duan serve: OpenAI-compatible server (local model, optional cloud routing)"};
    std::string model_path, host = "127.0.0.1", api_key, cloud_url, cloud_key, policy_file,
                            chat_template, model_id, sysfs = "/sys";
    int port = 8080, parallel = 4, n_ctx = 0, threads = 0, queue = 16, http_threads = 0;
    size_t max_body = 8u << 20;
    double drain_s = 30;
    bool fake = false;
    int fake_delay_ms = 20;
    std::optional<double> battery, temp;
    std::optional<int> charging;
    std::string sd_model, clip_merges;
    serve::ImageLimits image_limits;
    app.add_option("-m,--model", model_path, "GGUF model file");
    app.add_option(
        "--sd-model", sd_model,
        "Stable Diffusion 1.x/2.x/SDXL checkpoint: enables POST /v1/images/generations and "
        "/v1/images/latents (alone or with -m)");
    app.add_option("--clip-merges", clip_merges,
                   "CLIP merges.txt for --sd-model (default: $DUAN_CLIP_MERGES or next to it)");
    app.add_option("--image-max-size", image_limits.max_side, "largest image side in pixels")
        ->check(CLI::Range(64, 4096))
        ->capture_default_str();
    app.add_option("--image-max-steps", image_limits.max_steps, "most sampling steps per image")
        ->check(CLI::Range(1, 1000))
        ->capture_default_str();
    app.add_option("--image-queue", image_limits.max_queue,
                   "image requests waiting beyond the running one before 429")
        ->check(CLI::Range(0, 1000))
        ->capture_default_str();
    app.add_option("--host", host, "address to bind (default loopback)");
    app.add_option("--port", port, "port")->check(CLI::Range(0, 65535));
    app.add_option("--api-key", api_key, "require 'Authorization: Bearer KEY' (or $DUAN_API_KEY)");
    app.add_option("--parallel", parallel, "sequences decoded together")->check(CLI::Range(1, 256));
    app.add_option("-c,--ctx", n_ctx, "context positions per sequence (0: model, max 4096)")
        ->check(CLI::Range(0, 1 << 20));
    app.add_option("-t,--threads", threads, "compute threads (0: all cores)")
        ->check(CLI::Range(0, 1024));
    app.add_option("--queue", queue, "requests waiting beyond --parallel before 429")
        ->check(CLI::Range(0, 100000));
    app.add_option("--http-threads", http_threads,
                   "connections served at once (0: parallel+queue+4)")
        ->check(CLI::Range(0, 4096));
    app.add_option("--max-body", max_body, "largest request body in bytes (413 beyond)");
    app.add_option("--chat-template", chat_template, "chat template name (default: detected)");
    app.add_option("--model-id", model_id, "model name reported by /v1/models");
    app.add_option("--cloud", cloud_url, "OpenAI-compatible endpoint, e.g. https://host/v1");
    app.add_option("--cloud-key", cloud_key, "API key for --cloud (or $DUAN_CLOUD_KEY)");
    app.add_option("--policy", policy_file, "routing policy JSON (docs/SERVING.md)");
    app.add_option("--battery", battery, "override battery percent")->check(CLI::Range(0.0, 100.0));
    app.add_option("--charging", charging, "override charging (0/1)")->check(CLI::Range(0, 1));
    app.add_option("--temp", temp, "override device temperature (Celsius)");
    app.add_option("--sysfs", sysfs, "sysfs root for battery/thermal readings");
    app.add_option("--drain-timeout", drain_s, "seconds to let requests finish on SIGINT/SIGTERM");
    app.add_flag("--fake", fake, "no model: a deterministic fake engine (tests, load scripts)");
    app.add_option("--fake-delay-ms", fake_delay_ms, "fake engine: milliseconds per step");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    if (api_key.empty())
        if (const char* e = std::getenv("DUAN_API_KEY")) api_key = e;
    if (cloud_key.empty())
        if (const char* e = std::getenv("DUAN_CLOUD_KEY")) cloud_key = e;

    // Signals go to the main thread only (sigwait below); every thread started later inherits
    // the blocked mask.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    try {
        hybrid::Policy policy =
            policy_file.empty() ? hybrid::Policy{} : hybrid::Policy::load(policy_file);
        hybrid::DeviceProbe device(
            sysfs, {battery, charging ? std::optional<bool>(*charging != 0) : std::nullopt, temp});
        hybrid::Metrics metrics;

        std::unique_ptr<Model> model;
        std::unique_ptr<hybrid::Scheduler> local;
        std::string local_reason = "no_local_model";
        hybrid::SchedulerOptions so;
        so.max_queue = queue;
        if (fake) {
            hybrid::FakeEngineOptions fo;
            fo.n_slots = parallel;
            fo.n_ctx = n_ctx > 0 ? n_ctx : 2048;
            fo.step_delay = std::chrono::milliseconds(fake_delay_ms);
            fo.model_id = model_id.empty() ? "fake" : model_id;
            local =
                std::make_unique<hybrid::Scheduler>(std::make_unique<hybrid::FakeEngine>(fo), so);
        } else if (!model_path.empty()) {
            uint64_t bytes = std::filesystem::file_size(model_path);
            if (policy.mem_budget_bytes > 0 && bytes > policy.mem_budget_bytes) {
                local_reason = "model_exceeds_budget";
                std::fprintf(stderr, "serve: %s (%llu MiB) exceeds the memory budget; cloud only\n",
                             model_path.c_str(), static_cast<unsigned long long>(bytes >> 20));
            } else {
                model = Model::load(model_path);
                hybrid::LocalEngineOptions lo;
                lo.n_slots = parallel;
                lo.n_ctx = n_ctx;
                lo.n_threads = threads;
                lo.chat_template = chat_template;
                lo.model_id =
                    model_id.empty() ? std::filesystem::path(model_path).stem().string() : model_id;
                local = std::make_unique<hybrid::Scheduler>(
                    std::make_unique<hybrid::LocalEngine>(*model, lo), so);
            }
        }
        std::unique_ptr<serve::HttpCloudBackend> cloud;
        if (!cloud_url.empty())
            cloud = std::make_unique<serve::HttpCloudBackend>(
                serve::CloudOptions{cloud_url, cloud_key});
        std::unique_ptr<diffusion::StableDiffusion> sd;
        std::unique_ptr<serve::ImageService> images;
        if (!sd_model.empty()) {
            image_limits.max_pixels =
                static_cast<int64_t>(image_limits.max_side) * image_limits.max_side;
            sd = std::make_unique<diffusion::StableDiffusion>(
                sd_model, diffusion::find_clip_merges(clip_merges, sd_model),
                threads > 0 ? threads : default_thread_count());
            images = std::make_unique<serve::ImageService>(
                *sd, std::filesystem::path(sd_model).stem().string(), image_limits);
        }
        if (!local && !cloud && !images)
            fail("serve: give -m MODEL, --sd-model CKPT, --fake, or --cloud URL");

        hybrid::Router router(local.get(), cloud.get(), std::move(policy), &device, &metrics,
                              local_reason);
        metrics.describe("duan_queue_depth", "gauge", "Requests waiting for a slot");
        metrics.describe("duan_active_sequences", "gauge", "Sequences being decoded");
        metrics.describe("duan_device_battery_percent", "gauge", "Battery level (if known)");
        metrics.describe("duan_device_temperature_celsius", "gauge",
                         "Hottest thermal zone (if known)");
        metrics.on_render([&](hybrid::Metrics& m) {
            if (local) {
                auto st = local->stats();
                m.set("duan_queue_depth", {}, st.queued);
                m.set("duan_active_sequences", {}, st.active);
                m.set("duan_slots", {}, st.slots);
                m.set("duan_decode_tokens_per_second", {}, st.decode_tok_per_s);
                m.set("duan_prefill_tokens_per_second", {}, st.prefill_tok_per_s);
            }
            auto d = device.read();
            if (d.battery_pct) m.set("duan_device_battery_percent", {}, *d.battery_pct);
            if (d.temp_c) m.set("duan_device_temperature_celsius", {}, *d.temp_c);
        });

        serve::ServerOptions sopt;
        sopt.host = host;
        sopt.port = port;
        sopt.api_key = api_key;
        sopt.max_body_bytes = max_body;
        sopt.model_id = local               ? local->engine().model_id()
                        : !model_id.empty() ? model_id
                        : images            ? images->model_name()
                                            : "cloud";
        sopt.http_threads = http_threads > 0 ? http_threads : parallel + queue + 4;
        serve::HttpServer server(router, metrics, sopt);
        if (images) serve::install_image_api(server, *images, metrics);
        server.start();
        std::fprintf(stderr, "serve: listening on http://%s:%d (%s%s%s)\n", host.c_str(),
                     server.port(), local ? "local" : "",
                     cloud ? (local ? " + cloud" : "cloud") : "",
                     images ? (local || cloud ? " + images" : "images") : "");
        if (host != "127.0.0.1" && host != "localhost" && host != "::1" && api_key.empty())
            std::fprintf(stderr, "serve: warning: bound to %s without --api-key\n", host.c_str());

        int sig = 0;
        sigwait(&sigs, &sig);
        std::fprintf(stderr, "serve: signal %d, draining (up to %.0f s)\n", sig, drain_s);
        server.drain_and_stop(drain_s);
        if (local) local->shutdown(false);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "serve: %s\n", e.what());
        return 1;
    }
}

}  // namespace duan
