// duan bench: prefill and decode speed of a model, measured the way llama.cpp's llama-bench does
// (pp: one batch of p random tokens from position 0; tg: n single-token decodes; one warm-up, then
// r repetitions, the sequence cleared before each), plus load time, peak RSS, and the decode
// roofline: weight bytes read per token divided by the measured memory read bandwidth.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/sysinfo.h"
#include "llm/context.h"
#include "llm/model.h"

namespace duan::cli {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// llama_ftype names as llama-bench prints them.
std::string ftype_name(uint32_t f) {
    switch (f) {
        case 0:
            return "F32";
        case 1:
            return "F16";
        case 2:
            return "Q4_0";
        case 3:
            return "Q4_1";
        case 7:
            return "Q8_0";
        case 8:
            return "Q5_0";
        case 9:
            return "Q5_1";
        case 10:
            return "Q2_K - Medium";
        case 11:
            return "Q3_K - Small";
        case 12:
            return "Q3_K - Medium";
        case 13:
            return "Q3_K - Large";
        case 14:
            return "Q4_K - Small";
        case 15:
            return "Q4_K - Medium";
        case 16:
            return "Q5_K - Small";
        case 17:
            return "Q5_K - Medium";
        case 18:
            return "Q6_K";
        case 32:
            return "BF16";
        default:
            return "ftype " + std::to_string(f);
    }
}

std::string human_size(double b) {
    char s[32];
    if (b >= 1024.0 * 1024 * 1024)
        std::snprintf(s, sizeof s, "%.2f GiB", b / (1024.0 * 1024 * 1024));
    else
        std::snprintf(s, sizeof s, "%.2f MiB", b / (1024.0 * 1024));
    return s;
}

std::string human_count(double n) {
    char s[32];
    if (n >= 1e9)
        std::snprintf(s, sizeof s, "%.2f B", n / 1e9);
    else
        std::snprintf(s, sizeof s, "%.2f M", n / 1e6);
    return s;
}

struct Result {
    std::string test;
    int n_prompt = 0, n_gen = 0;
    std::vector<double> ts;  // tokens per second of each repetition
    double avg() const {
        double s = 0;
        for (double x : ts) s += x;
        return ts.empty() ? 0 : s / static_cast<double>(ts.size());
    }
    double stddev() const {  // sample standard deviation, as llama-bench
        if (ts.size() < 2) return 0;
        const double m = avg();
        double s = 0;
        for (double x : ts) s += (x - m) * (x - m);
        return std::sqrt(s / static_cast<double>(ts.size() - 1));
    }
};

// Weight bytes one decode step reads: every matrix and vector once, the output matrix in full
// (token_embd when tied), but only one row of token_embd for the input.
uint64_t decode_weight_bytes(const Model& m) {
    uint64_t total = 0, embd = 0;
    for (const auto& t : m.file().tensors()) {
        total += t.n_bytes;
        if (t.name == "token_embd.weight") embd = t.n_bytes;
    }
    const auto& w = m.weights();
    const bool tied = w.output.data == w.tok_embd.data;
    return total - (tied ? 0 : embd) + w.tok_embd.row_bytes;
}

}  // namespace

int cmd_bench(int argc, char** argv) {
    CLI::App app{"duan bench: prefill (pp) and decode (tg) speed, like llama-bench", "duan bench"};
    std::string path;
    int n_prompt = 512, n_gen = 128, reps = 3, threads = 0, bw_mib = 256;
    bool json = false, bw_only = false, no_roofline = false;
    app.add_option("-m,--model", path, "GGUF model file");
    app.add_option("-p,--n-prompt", n_prompt, "prompt tokens for the pp test (0 = skip)");
    app.add_option("-n,--n-gen", n_gen, "generated tokens for the tg test (0 = skip)");
    app.add_option("-t,--threads", threads, "threads (0 = all cores)");
    app.add_option("-r,--repetitions", reps, "repetitions of each test")
        ->check(CLI::Range(1, 1000));
    app.add_flag("--json", json,
                 "print JSON rows (test, avg_ts, stddev_ts, ...) instead of a table");
    app.add_flag("--memory-bandwidth", bw_only, "only measure the memory read bandwidth");
    app.add_flag("--no-roofline", no_roofline, "skip the bandwidth measurement");
    app.add_option("--bw-buffer-mib", bw_mib, "buffer size of the bandwidth test")
        ->check(CLI::Range(16, 1 << 16));
    if (int rc = parse(app, argc, argv); rc >= 0) return rc;
    if (threads <= 0) threads = default_thread_count();

    if (bw_only) {
        const auto bw = sysinfo::measure_read_bandwidth(threads, size_t(bw_mib) << 20);
        if (json) {
            nlohmann::json j = {{"test", "memory_bandwidth"}, {"mem_bw_gbs", bw.gb_per_s},
                                {"n_threads", bw.n_threads},  {"buffer_bytes", bw.buffer_bytes},
                                {"passes", bw.passes},        {"cpu", sysinfo::cpu_model()}};
            std::printf("%s\n", nlohmann::json::array({j}).dump(2).c_str());
        } else {
            std::printf(
                "memory read bandwidth: %.2f GB/s (%d threads, %zu MiB buffer, best of %d)\n",
                bw.gb_per_s, bw.n_threads, bw.buffer_bytes >> 20, bw.passes);
        }
        return 0;
    }
    if (path.empty()) fail("-m MODEL is required (or --memory-bandwidth)");
    if (n_prompt < 0 || n_gen < 0) fail("-p and -n must be >= 0");

    const auto t_load = Clock::now();
    auto model = Model::load(path);
    const double load_ms = seconds_since(t_load) * 1e3;
    const auto& hp = model->hparams();
    ContextOptions co;
    co.n_threads = threads;
    co.n_ctx = std::max(1, n_prompt + n_gen);
    co.n_ubatch = 512;
    Context ctx(*model, co);

    int64_t n_params = 0;
    uint64_t size = 0;
    for (const auto& t : model->file().tensors()) {
        n_params += t.n_elements();
        size += t.n_bytes;
    }
    const uint32_t ftype = model->file().meta().get_u32("general.file_type").value_or(0);
    const std::string model_type =
        hp.arch + " " + human_count(static_cast<double>(n_params)) + " " + ftype_name(ftype);

    std::mt19937 rng(1234);
    std::uniform_int_distribution<int> tok(0, static_cast<int>(hp.n_vocab) - 1);
    auto run_pp = [&]() {
        std::vector<BatchToken> b(static_cast<size_t>(n_prompt));
        for (int i = 0; i < n_prompt; ++i)
            b[static_cast<size_t>(i)] = {tok(rng), i, 0, i + 1 == n_prompt};
        ctx.clear_all();
        const auto t0 = Clock::now();
        ctx.decode(b);
        return seconds_since(t0);
    };
    auto run_tg = [&](int n) {
        ctx.clear_all();
        const auto t0 = Clock::now();
        for (int i = 0; i < n; ++i) ctx.decode({{tok(rng), i, 0, true}});
        return seconds_since(t0);
    };

    std::vector<Result> results;
    if (n_prompt > 0) {
        Result r{"pp" + std::to_string(n_prompt), n_prompt, 0, {}};
        run_pp();  // warm-up
        for (int k = 0; k < reps; ++k) r.ts.push_back(n_prompt / run_pp());
        results.push_back(r);
    }
    if (n_gen > 0) {
        Result r{"tg" + std::to_string(n_gen), 0, n_gen, {}};
        run_tg(1);  // warm-up
        for (int k = 0; k < reps; ++k) r.ts.push_back(n_gen / run_tg(n_gen));
        results.push_back(r);
    }
    ctx.clear_all();
    const uint64_t peak_rss = sysinfo::peak_rss_bytes();

    // Roofline: weights plus the K/V rows attention reads (on average half of n_gen positions).
    const double kv_per_pos = static_cast<double>(hp.n_layer) * static_cast<double>(hp.kv_dim()) *
                              2.0 /*K and V*/ * 2.0 /*f16*/;
    const double bytes_per_token = static_cast<double>(decode_weight_bytes(*model)) +
                                   kv_per_pos * std::max(0, n_gen - 1) / 2.0;
    sysinfo::Bandwidth bw;
    if (!no_roofline) bw = sysinfo::measure_read_bandwidth(threads, size_t(bw_mib) << 20);
    const double roofline_ts = bw.gb_per_s > 0 ? bw.gb_per_s * 1e9 / bytes_per_token : 0;

    if (json) {
        nlohmann::json rows = nlohmann::json::array();
        for (const auto& r : results) {
            nlohmann::json j = {{"model_filename", path}, {"model_type", model_type},
                                {"model_size", size},     {"model_n_params", n_params},
                                {"n_threads", threads},   {"n_prompt", r.n_prompt},
                                {"n_gen", r.n_gen},       {"test", r.test},
                                {"avg_ts", r.avg()},      {"stddev_ts", r.stddev()},
                                {"samples_ts", r.ts},     {"peak_rss", peak_rss},
                                {"load_ms", load_ms},     {"cpu", sysinfo::cpu_model()}};
            if (r.n_gen > 0) {
                j["bytes_per_token"] = bytes_per_token;
                if (bw.gb_per_s > 0) {
                    j["mem_bw_gbs"] = bw.gb_per_s;
                    j["roofline_ts"] = roofline_ts;
                }
            }
            rows.push_back(j);
        }
        std::printf("%s\n", rows.dump(2).c_str());
        return 0;
    }
    std::printf("| %-30s | %10s | %10s | %7s | %8s | %20s |\n", "model", "size", "params",
                "threads", "test", "t/s");
    std::printf("| %-30s | %10s | %10s | %7s | %8s | %20s |\n", "------------------------------",
                "---------:", "---------:", "------:", "-------:", "-------------------:");
    for (const auto& r : results) {
        char ts[64];
        std::snprintf(ts, sizeof ts, "%.2f ± %.2f", r.avg(), r.stddev());
        std::printf("| %-30s | %10s | %10s | %7d | %8s | %20s |\n", model_type.c_str(),
                    human_size(static_cast<double>(size)).c_str(),
                    human_count(static_cast<double>(n_params)).c_str(), threads, r.test.c_str(),
                    ts);
    }
    std::printf("\nload: %.1f ms   peak RSS: %s   KV cache: %s   cpu: %s\n", load_ms,
                human_size(static_cast<double>(peak_rss)).c_str(),
                human_size(static_cast<double>(ctx.kv_cache_bytes())).c_str(),
                sysinfo::cpu_model().c_str());
    if (bw.gb_per_s > 0) {
        std::printf("decode roofline: %s read per token / %.2f GB/s (%d threads) = %.2f t/s",
                    human_size(bytes_per_token).c_str(), bw.gb_per_s, threads, roofline_ts);
        for (const auto& r : results)
            if (r.n_gen > 0)
                std::printf("; %s reaches %.0f%%", r.test.c_str(), 100.0 * r.avg() / roofline_ts);
        std::printf("\n");
    }
    return 0;
}

}  // namespace duan::cli
