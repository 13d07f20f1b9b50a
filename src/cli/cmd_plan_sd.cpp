// duan plan --sd CKPT | --sd-preset sd15,sd2,sdxl: memory per stage, local time, and the
// device/cloud split (bytes each way, time on each side) for each --device; --measure runs the
// checkpoint here and compares peak RSS and stage times with the plan.
#include <cstdio>
#include <iostream>

#include "cli/plan_sd.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "diffusion/sd_files.h"
#include "plan/plan.h"
#include "plan/probe.h"

namespace duan::cli {

namespace {
using namespace duan::plan;

std::string secs(double v) {
    char s[32];
    if (v >= 3600)
        std::snprintf(s, sizeof s, "%.1f h", v / 3600);
    else if (v >= 60)
        std::snprintf(s, sizeof s, "%.1f min", v / 60);
    else if (v >= 10)
        std::snprintf(s, sizeof s, "%.1f s", v);
    else
        std::snprintf(s, sizeof s, "%.2f s", v);
    return s;
}
std::string tflops(double f) {
    char s[32];
    std::snprintf(s, sizeof s, f >= 1e12 ? "%.2f TFLOP" : "%.1f GFLOP",
                  f >= 1e12 ? f / 1e12 : f / 1e9);
    return s;
}
std::string kb(uint64_t b) {
    char s[32];
    if (b >= 1000000)
        std::snprintf(s, sizeof s, "%.2f MB", b / 1e6);
    else if (b >= 1000)
        std::snprintf(s, sizeof s, "%.1f kB", b / 1e3);
    else
        std::snprintf(s, sizeof s, "%llu B", static_cast<unsigned long long>(b));
    return s;
}

void print_model(const SdModel& m, const SdPlanRow& r) {
    const auto& run = r.run;
    std::printf("\n%s  %s  %s (%s)  %dx%d, %d steps, cfg %g -> %d UNet evaluations\n",
                m.name.c_str(), diffusion::sd_version_name(m.arch.unet.version), m.type.c_str(),
                m.container.c_str(), run.width, run.height, run.steps, run.cfg, run.evals());
    for (const auto& l : r.memory.lines)
        std::printf("  %-13s %10s  %s\n", l.name.c_str(), gb(l.bytes).c_str(), l.detail.c_str());
    const auto& mem = r.memory;
    std::printf(
        "  stages (mapped weights + activations): text %s, unet %s, vae %s -> peak %s (%s)\n",
        gb(mem.text.weights + mem.text.activations).c_str(),
        gb(mem.unet.weights + mem.unet.activations).c_str(),
        gb(mem.vae.weights + mem.vae.activations).c_str(), gb(mem.peak()).c_str(),
        mem.peak_stage().c_str());
    std::printf("  FLOPs: text %s, UNet %s per evaluation x %d = %s, VAE decode %s\n",
                tflops(r.flops_text).c_str(), tflops(r.flops_unet_eval).c_str(), run.evals(),
                tflops(r.flops_unet_eval * run.evals()).c_str(), tflops(r.flops_vae).c_str());
}

void print_row(const SdPlanRow& r) {
    std::printf(
        "  %-16s budget %s (%s): %s, peak %s, headroom %s%s; compute %.0f Gop/s (naive %.0f)\n",
        r.device.id.c_str(), gb(r.budget.bytes).c_str(), r.budget.rule.c_str(),
        r.fits ? "fits" : "does NOT fit", gb(r.memory.peak()).c_str(), r.headroom < 0 ? "-" : "+",
        gb(static_cast<uint64_t>(r.headroom < 0 ? -r.headroom : r.headroom)).c_str(), r.eff_gops,
        r.naive_gops);
    const auto& l = r.local;
    std::printf(
        "    local  text %s + denoise %s (%s/eval) + VAE %s + PNG %s = %s   (naive TOPS: %s)\n",
        secs(l.text).c_str(), secs(l.denoise).c_str(), secs(l.denoise / r.run.evals()).c_str(),
        secs(l.vae).c_str(), secs(l.png).c_str(), secs(l.total()).c_str(),
        secs(r.naive_local.total()).c_str());
    const auto& s = r.split;
    std::printf(
        "    split  cloud %s: text %s + denoise %s | sent %s, received %s (F16 latent): %s | "
        "device: VAE %s + PNG %s, peak %s%s = %s\n",
        r.cloud.id.c_str(), secs(r.cloud_times.text).c_str(), secs(r.cloud_times.denoise).c_str(),
        kb(s.request_bytes).c_str(), kb(s.latent_bytes).c_str(), secs(s.transfer_s).c_str(),
        secs(r.local.vae).c_str(), secs(r.local.png).c_str(), gb(r.memory.split_device).c_str(),
        r.split_fits ? "" : " (does NOT fit)", secs(s.total()).c_str());
    std::printf("    cloud  %s: %s | sent %s, received %s (PNG, base64 JSON): %s = %s\n",
                r.cloud.id.c_str(), secs(s.cloud_png_s).c_str(), kb(s.request_bytes).c_str(),
                kb(s.png_bytes).c_str(), secs(s.cloud_png_transfer_s).c_str(),
                secs(s.cloud_total()).c_str());
    if (s.breakeven_mbps > 0)
        std::printf("    faster: %s (the split beats the PNG below %.2f Mbit/s)\n",
                    r.faster.c_str(), s.breakeven_mbps);
    else
        std::printf("    faster: %s (the split beats the PNG at any bandwidth)\n",
                    r.faster.c_str());
}

int measure(const PlanSdArgs& a) {
    if (a.files.size() != 1)
        fail("--sd … --measure takes one checkpoint (peak RSS is per process)");
    const std::string& f = a.files[0];
    const std::string merges = diffusion::find_clip_merges(a.clip_merges, f);
    const int threads = a.run.threads > 0 ? a.run.threads : default_thread_count();
    // Measure first: the peak RSS is process-wide.
    const SdMeasured got = sd_measure_run(f, merges, a.run, threads);
    const SdModel m = sd_model_file(f);
    Profile prof = load_profile(a.profile_path.empty() ? default_profile_path() : a.profile_path);
    Device d = probe_this_device();
    d.cpu_big = threads, d.cpu_little = 0;
    d.cpu_int8_gops = nominal_cpu_int8_gops(threads);
    Catalog cat;
    SdRun run = a.run;
    run.threads = threads;
    BudgetOptions bo;
    bo.bytes = 1ull << 40;
    const SdPlanRow r = sd_make_row(m, run, d, d, cat, bo, prof);
    const double mem_err = static_cast<double>(r.memory.peak()) / got.peak_rss - 1;
    const double t_err = r.local.total() / got.total_s - 1;
    if (a.json) {
        nlohmann::json j = sd_row_json(r);
        j["measured_peak_rss"] = got.peak_rss;
        j["memory_error"] = mem_err;
        j["measured_load_s"] = got.load_s;
        j["measured_text_s"] = got.text_s;
        j["measured_denoise_s"] = got.denoise_s;
        j["measured_vae_s"] = got.vae_s;
        j["measured_png_s"] = got.png_s;
        j["measured_s"] = got.total_s;
        j["time_error"] = t_err;
        j["measured_text_cpu_s"] = got.text_cpu_s;
        j["measured_denoise_cpu_s"] = got.denoise_cpu_s;
        j["measured_vae_cpu_s"] = got.vae_cpu_s;
        j["measured_png_cpu_s"] = got.png_cpu_s;
        j["measured_cpu_s"] = got.total_cpu_s;
        j["threads"] = threads;
        std::cout << j.dump() << "\n";
        return 0;
    }
    print_model(m, r);
    std::printf("  measured here (%d threads): peak RSS %s vs plan %s (%+.1f%%)\n", threads,
                gb(got.peak_rss).c_str(), gb(r.memory.peak()).c_str(), mem_err * 100);
    std::printf("    %-8s %10s %12s %10s\n", "stage", "wall", "cpu/threads", "plan");
    auto stage = [&](const char* n, double wall, double cpu_s, double plan) {
        std::printf("    %-8s %10s %12s %10s  (%+.0f%% vs cpu/threads)\n", n, secs(wall).c_str(),
                    secs(cpu_s / threads).c_str(), secs(plan).c_str(),
                    (plan / (cpu_s / threads) - 1) * 100);
    };
    stage("text", got.text_s, got.text_cpu_s, r.local.text);
    stage("denoise", got.denoise_s, got.denoise_cpu_s, r.local.denoise);
    stage("VAE", got.vae_s, got.vae_cpu_s, r.local.vae);
    stage("PNG", got.png_s, got.png_cpu_s * threads, r.local.png);  // one thread
    stage("total", got.total_s, got.total_cpu_s, r.local.total());
    std::printf("    (load %s, not planned)%s\n", secs(got.load_s).c_str(),
                r.calibrated ? "" : "  [no profile: run duan plan --calibrate]");
    return 0;
}
}  // namespace

int plan_sd(const PlanSdArgs& a) {
    if (a.measure) return measure(a);
    Catalog cat = load_catalog(a.catalog_path);
    const std::string prof_path = a.profile_path.empty() ? default_profile_path() : a.profile_path;
    Profile prof = load_profile(prof_path);
    std::vector<std::string> ids = a.devices;
    if (ids.empty()) ids = {"this"};
    std::vector<Device> devices;
    for (const auto& id : ids) devices.push_back(cat.find(id));
    const Device cloud = cat.find(a.cloud);
    if (cloud.cpu_int8_gops > 0 || cloud.int8_tops <= 0)
        fail("--cloud-device '", a.cloud, "' is not a GPU of the catalog (e.g. a10, h100)");

    std::vector<SdModel> models;
    std::vector<std::string> types = a.types;
    for (const auto& p : a.presets)
        for (const auto& t : types.empty() ? std::vector<std::string>{"f16"} : types)
            models.push_back(sd_model_preset(p, t));
    for (const auto& f : a.files) {
        if (types.empty())
            models.push_back(sd_model_file(f));
        else
            for (const auto& t : types) models.push_back(sd_model_file(f, t));
    }
    if (!a.json) {
        if (!prof.empty())
            std::printf("calibrated with %s (%s, %s)\n", prof_path.c_str(), prof.machine.c_str(),
                        prof.created.c_str());
        else
            std::printf(
                "no calibration profile (%s): default efficiency factors; run `duan plan "
                "--calibrate`\n",
                prof_path.c_str());
        std::printf("network %.0f Mbit/s, RTT %.0f ms; cloud side %s\n", a.run.network_mbps,
                    a.run.rtt_ms, cloud.name.c_str());
    }
    for (const auto& m : models) {
        bool first = true;
        for (const auto& d : devices) {
            const SdPlanRow r = sd_make_row(m, a.run, d, cloud, cat, a.budget, prof);
            if (a.json) {
                std::cout << sd_row_json(r).dump() << "\n";
                continue;
            }
            if (first) print_model(m, r);
            first = false;
            print_row(r);
        }
    }
    return 0;
}

}  // namespace duan::cli
