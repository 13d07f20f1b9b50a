// duan plan: will a model run on a device, and how fast? Memory lines, budget, predicted prefill
// and decode speeds, time for an answer; --recommend picks a model + quantization for a device;
// --calibrate stores this machine's efficiency factors; --measure checks the plan against a run.
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/plan_sd.h"
#include "core/error.h"
#include "format/gguf.h"
#include "llm/presets.h"
#include "plan/plan.h"

namespace duan::cli {

namespace {

using namespace duan::plan;

std::string tps(double v) {
    char s[32];
    if (v <= 0) return "-";
    std::snprintf(s, sizeof s, v >= 100 ? "%.0f" : v >= 10 ? "%.1f" : "%.2f", v);
    return s;
}

std::string secs(double v) {
    char s[32];
    if (v <= 0) return "-";
    if (v >= 3600)
        std::snprintf(s, sizeof s, "%.1f h", v / 3600);
    else if (v >= 60)
        std::snprintf(s, sizeof s, "%.1f min", v / 60);
    else
        std::snprintf(s, sizeof s, "%.1f s", v);
    return s;
}

std::string signed_gb(int64_t b) {
    return (b < 0 ? "-" : "+") + gb(static_cast<uint64_t>(b < 0 ? -b : b));
}

void print_memory(const ModelShape& m, const RunShape& r, const MemoryPlan& mem) {
    std::printf("\n%s  %s  ctx %d  (%.2f B params)\n", m.name.c_str(), m.type.c_str(), r.n_ctx,
                m.n_params() / 1e9);
    for (const auto& l : mem.lines)
        std::printf("  %-10s %10s  %s\n", l.name.c_str(), gb(l.bytes).c_str(), l.detail.c_str());
    std::printf("  %-10s %10s\n", "total", gb(mem.total()).c_str());
}

void print_header(int prompt, int answer) {
    std::printf("  %-16s %-28s %4s %10s %9s %9s %9s %9s %11s %11s\n", "device", "budget", "fits",
                "headroom", "pp t/s", "(naive)", "tg t/s", "(naive)",
                ("answer" + std::to_string(answer)).c_str(), "(naive)");
    (void)prompt;
}

void print_row(const PlanRow& row) {
    std::printf("  %-16s %-28s %4s %10s %9s %9s %9s %9s %11s %11s\n", row.device.id.c_str(),
                (gb(row.budget.bytes) + " " + row.device.os).c_str(), row.fits ? "yes" : "NO",
                signed_gb(row.headroom).c_str(), tps(row.speed.prefill_tps).c_str(),
                tps(row.speed.naive_prefill_tps).c_str(), tps(row.speed.decode_tps).c_str(),
                tps(row.speed.naive_decode_tps).c_str(), secs(row.speed.answer_seconds).c_str(),
                secs(row.speed.naive_answer_seconds).c_str());
}

void log_line(const std::string& s) {
    std::fprintf(stderr, "  %s\n", s.c_str());
}

}  // namespace

int cmd_plan(int argc, char** argv) {
    CLI::App app{"duan plan: will a model run on a device, and how fast?", "duan plan"};
    std::vector<std::string> files, preset_names, type_names, device_ids;
    std::vector<int> ctxs;
    std::string layout_name_s = "llama.cpp", budget_s, os, catalog_path, profile_path,
                cache_k = "f16", cache_v = "f16";
    double budget_fraction = 0, min_tps = 5.0;
    int ubatch = 512, threads = 0, prompt = 512, answer = 2048, measure_gen = 16;
    bool json = false, do_recommend = false, do_calibrate = false, do_measure = false,
         list_devices = false;
    app.add_option("-m,--model", files, "GGUF model file (repeatable)");
    app.add_option("--preset", preset_names, "model preset(s), e.g. qwen2.5-7b (repeatable)")
        ->delimiter(',');
    app.add_option("--type", type_names,
                   "weight type(s) for presets, as duan synth: q4_0 q4_k_m q8_0 f16 …")
        ->delimiter(',');
    app.add_option("--layout", layout_name_s,
                   "how a preset is typed: uniform (duan synth), llama.cpp (output q6_k), "
                   "gptq-like (embeddings f16)");
    app.add_option("-c,--ctx", ctxs, "context length(s) (default: model's, at most 4096)")
        ->delimiter(',');
    app.add_option("--device", device_ids, "device id(s) from the catalog, or 'this'")
        ->delimiter(',');
    app.add_option("--budget", budget_s,
                   "memory budget for the app, e.g. 6G (overrides the OS rule)");
    app.add_option("--budget-fraction", budget_fraction,
                   "fraction of RAM for the app (overrides the OS rule)");
    app.add_option("--os", os, "OS rule to apply: android ios ios-entitled ipados macos linux gpu");
    app.add_option("--cache-type-k", cache_k, "KV cache type for K");
    app.add_option("--cache-type-v", cache_v, "KV cache type for V");
    app.add_option("--ubatch", ubatch, "tokens per forward pass");
    app.add_option("-t,--threads", threads, "threads for --measure/--calibrate (0 = all)");
    app.add_option("--prompt", prompt, "prompt tokens for the prefill estimate");
    app.add_option("--answer", answer, "answer tokens for the time estimate");
    app.add_flag("--json", json, "one JSON object per line per plan row");
    app.add_flag("--recommend", do_recommend, "pick the best preset + type that fits --device");
    app.add_option("--min-tps", min_tps, "--recommend: slowest acceptable decode t/s");
    app.add_flag("--calibrate", do_calibrate,
                 "measure this machine's efficiency factors and store them");
    app.add_option("--profile", profile_path,
                   "calibration profile (default ~/.cache/duan/profile.json)");
    app.add_option("--catalog", catalog_path, "device catalog (default data/devices.json)");
    app.add_flag("--measure", do_measure,
                 "run each -m file here and compare peak RSS and speeds with the plan");
    app.add_option("--measure-gen", measure_gen, "--measure: decode steps to time");
    app.add_flag("--list-devices", list_devices, "print the catalog");
    // Stable Diffusion (cmd_plan_sd.cpp).
    PlanSdArgs sd;
    app.add_option("--sd", sd.files, "Stable Diffusion checkpoint (.safetensors, .gguf, folder)");
    app.add_option("--sd-preset", sd.presets, "Stable Diffusion preset(s): sd15 sd2 sdxl")
        ->delimiter(',');
    app.add_option("-W,--width", sd.run.width, "SD: image width (multiple of 64)");
    app.add_option("-H,--height", sd.run.height, "SD: image height (multiple of 64)");
    app.add_option("--steps", sd.run.steps, "SD: sampler steps");
    app.add_option("--cfg", sd.run.cfg, "SD: guidance scale (1 = no negative pass)");
    app.add_option("--cloud-device", sd.cloud, "SD split: the cloud side, a catalog GPU");
    app.add_option("--network-mbps", sd.run.network_mbps, "SD split: device-cloud Mbit/s");
    app.add_option("--rtt-ms", sd.run.rtt_ms, "SD split: round trip time, ms");
    app.add_option("--png-bpp", sd.run.png_bytes_per_pixel,
                   "SD: PNG bytes per pixel for the whole-image download");
    app.add_option("--clip-merges", sd.clip_merges, "SD --measure: CLIP merges.txt");
    if (int rc = parse(app, argc, argv); rc >= 0) return rc;
    if (!sd.files.empty() || !sd.presets.empty()) {
        sd.types = type_names;
        sd.devices = device_ids;
        sd.catalog_path = catalog_path;
        sd.profile_path = profile_path;
        sd.json = json;
        sd.measure = do_measure;
        sd.run.threads = threads;
        if (!budget_s.empty()) sd.budget.bytes = parse_bytes(budget_s);
        if (budget_fraction > 0) sd.budget.fraction = budget_fraction;
        sd.budget.os = os;
        return plan_sd(sd);
    }

    if (profile_path.empty()) profile_path = default_profile_path();
    RunShape base;
    base.n_ubatch = ubatch;
    base.n_threads = threads;
    auto kt = dtype_from_name(cache_k), vt = dtype_from_name(cache_v);
    if (!kt) fail("--cache-type-k: unknown type '", cache_k, "'");
    if (!vt) fail("--cache-type-v: unknown type '", cache_v, "'");
    base.cache_k = *kt;
    base.cache_v = *vt;

    // --measure first: the peak RSS is process-wide, so nothing else may have allocated yet.
    if (do_measure) {
        if (files.empty()) fail("--measure needs -m FILE");
        Profile prof = load_profile(profile_path);
        for (const auto& f : files) {
            RunShape r = base;
            r.n_ctx = ctxs.empty() ? 0 : ctxs[0];
            const int n_prompt = std::min(prompt, base.n_ubatch);
            Measured got;
            {
                auto gf = gguf::File::open(f);
                ModelShape tmp = shape_from_gguf(*gf);
                if (r.n_ctx <= 0)
                    r.n_ctx = static_cast<int>(std::min<int64_t>(tmp.n_ctx_train, 4096));
            }
            got = measure_run(f, r, std::min(n_prompt, r.n_ctx - measure_gen - 1), measure_gen);
            auto gf = gguf::File::open(f);
            ModelShape m = shape_from_gguf(*gf);
            MemoryPlan mem = plan_memory(m, r);
            Device d = probe_this_device();
            // The profile's efficiencies are ratios to the bandwidth measured in the same
            // minute; on a shared machine a fresh probe can differ by 2x (26 to 60 GB/s seen on
            // the 2-core VM), so this machine is planned with the profile's own figure.
            if (!prof.empty() && prof.read_bw_gbs > 0) d.mem_bw_gbs = prof.read_bw_gbs;
            SpeedPlan sp = plan_speed(m, r, d, prof, std::min(n_prompt, r.n_ctx - measure_gen - 1),
                                      2 * measure_gen);
            const double mem_err = (double)mem.total() / got.peak_rss - 1;
            const double pp_err = sp.prefill_tps / got.prefill_tps - 1;
            const double tg_err = sp.decode_tps / got.decode_tps - 1;
            if (json) {
                nlohmann::json j = {{"model", f},
                                    {"type", m.type},
                                    {"n_ctx", r.n_ctx},
                                    {"predicted_total_bytes", mem.total()},
                                    {"measured_peak_rss", got.peak_rss},
                                    {"rss_before_load", got.rss_before},
                                    {"memory_error", mem_err},
                                    {"predicted_prefill_tps", sp.prefill_tps},
                                    {"measured_prefill_tps", got.prefill_tps},
                                    {"prefill_error", pp_err},
                                    {"predicted_decode_tps", sp.decode_tps},
                                    {"measured_decode_tps", got.decode_tps},
                                    {"decode_error", tg_err},
                                    {"calibrated", sp.calibrated}};
                std::cout << j.dump() << "\n";
            } else {
                print_memory(m, r, mem);
                std::printf("  measured peak RSS %s: plan %+.1f%%\n", gb(got.peak_rss).c_str(),
                            mem_err * 100);
                std::printf("  prefill: predicted %s t/s, measured %s t/s (%+.1f%%)%s\n",
                            tps(sp.prefill_tps).c_str(), tps(got.prefill_tps).c_str(), pp_err * 100,
                            sp.calibrated ? "" : "  [no profile: run duan plan --calibrate]");
                std::printf("  decode:  predicted %s t/s, measured %s t/s (%+.1f%%)\n",
                            tps(sp.decode_tps).c_str(), tps(got.decode_tps).c_str(), tg_err * 100);
            }
            if (files.size() > 1)
                fail("--measure takes one -m file per run (peak RSS is per process)");
        }
        return 0;
    }

    if (do_calibrate) {
        std::fprintf(stderr, "calibrating (a few seconds)…\n");
        Profile p = calibrate(threads, log_line);
        save_profile(p, profile_path);
        std::fprintf(stderr, "profile written to %s\n", profile_path.c_str());
        if (files.empty() && preset_names.empty() && !do_recommend && device_ids.empty()) return 0;
    }

    Catalog cat = load_catalog(catalog_path);
    if (list_devices) {
        std::printf("%-20s %-40s %-8s %8s %9s %9s %6s %s\n", "id", "name", "os", "int8 TOPS",
                    "memory", "bandwidth", "cores", "estimated");
        for (const auto& d : cat.devices) {
            std::string est;
            for (const auto& e : d.estimated) est += (est.empty() ? "" : ",") + e;
            std::printf("%-20s %-40s %-8s %8.1f %9s %6.0f GB/s %2d+%-2d %s\n", d.id.c_str(),
                        d.name.c_str(), d.os.c_str(), d.int8_tops, gb(d.memory_bytes).c_str(),
                        d.mem_bw_gbs, d.cpu_big, d.cpu_little, est.c_str());
        }
        return 0;
    }

    BudgetOptions bo;
    if (!budget_s.empty()) bo.bytes = parse_bytes(budget_s);
    if (budget_fraction > 0) bo.fraction = budget_fraction;
    bo.os = os;
    Profile prof = load_profile(profile_path);
    if (device_ids.empty()) device_ids = {"this"};
    std::vector<Device> devices;
    for (const auto& id : device_ids) devices.push_back(cat.find(id));

    if (do_recommend) {
        for (const auto& d : devices) {
            RunShape r = base;
            r.n_ctx = ctxs.empty() ? 4096 : ctxs[0];
            auto rows = recommend(d, cat, bo, prof, r, min_tps);
            if (json) {
                for (size_t i = 0; i < rows.size(); ++i) {
                    auto j = row_json(rows[i]);
                    j["rank"] = i + 1;
                    std::cout << j.dump() << "\n";
                }
                continue;
            }
            std::printf("\n%s (%s): budget %s (%s)\n", d.name.c_str(), d.id.c_str(),
                        gb(app_budget(d, cat, bo).bytes).c_str(),
                        app_budget(d, cat, bo).rule.c_str());
            if (rows.empty()) {
                std::printf(
                    "  nothing fits: even the smallest preset at q4_0 exceeds the budget\n");
                continue;
            }
            const auto& b = rows[0];
            std::printf(
                "  recommended: %s %s, ctx %d — %s of %s, %s t/s decode, %s t/s prefill, "
                "%d-token answer in %s\n",
                b.model.name.c_str(), b.model.type.c_str(), b.run.n_ctx,
                gb(b.memory.total()).c_str(), gb(b.budget.bytes).c_str(),
                tps(b.speed.decode_tps).c_str(), tps(b.speed.prefill_tps).c_str(), answer,
                secs(b.speed.answer_seconds).c_str());
            std::printf("  next best:\n");
            for (size_t i = 1; i < rows.size() && i < 6; ++i)
                std::printf("    %-16s %-6s %10s  tg %s t/s\n", rows[i].model.name.c_str(),
                            rows[i].model.type.c_str(), gb(rows[i].memory.total()).c_str(),
                            tps(rows[i].speed.decode_tps).c_str());
        }
        return 0;
    }

    // The models: presets × types, and files.
    Layout layout = Layout::LlamaCpp;
    if (layout_name_s == "uniform")
        layout = Layout::Uniform;
    else if (layout_name_s == "gptq-like")
        layout = Layout::GptqLike;
    else if (layout_name_s != "llama.cpp")
        fail("--layout: '", layout_name_s, "' (use uniform, llama.cpp or gptq-like)");
    std::vector<ModelShape> models;
    if (type_names.empty()) type_names = {"q4_0"};
    for (const auto& name : preset_names) {
        const Preset* p = find_preset(name);
        if (!p) {
            std::string known;
            for (const auto& q : presets())
                known += std::string(known.empty() ? "" : ", ") + q.name;
            fail("--preset: unknown preset '", name, "' (known: ", known, ")");
        }
        for (const auto& tn : type_names) models.push_back(shape_from_preset(*p, tn, layout));
    }
    for (const auto& f : files) models.push_back(shape_from_gguf(*gguf::File::open(f)));
    if (models.empty()) fail("give -m FILE or --preset NAME (or --recommend --device D)");

    if (!json && !prof.empty())
        std::printf("calibrated with %s (%s, %s)\n", profile_path.c_str(), prof.machine.c_str(),
                    prof.created.c_str());
    else if (!json)
        std::printf(
            "no calibration profile (%s): speeds use default efficiency factors; run "
            "`duan plan --calibrate`\n",
            profile_path.c_str());
    for (const auto& m : models) {
        std::vector<int> cs = ctxs;
        if (cs.empty()) cs = {static_cast<int>(std::min<int64_t>(m.n_ctx_train, 4096))};
        for (int c : cs) {
            if (c <= 0) fail("--ctx must be > 0");
            RunShape r = base;
            r.n_ctx = c;
            if (!json) {
                print_memory(m, r, plan_memory(m, r));
                print_header(prompt, answer);
            }
            for (const auto& d : devices) {
                PlanRow row = make_row(m, r, d, cat, bo, prof, prompt, answer);
                if (json)
                    std::cout << row_json(row).dump() << "\n";
                else
                    print_row(row);
            }
        }
    }
    return 0;
}

}  // namespace duan::cli
