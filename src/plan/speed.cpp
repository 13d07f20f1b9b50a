#include "plan/speed.h"

#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/isa.h"
#include "plan/probe.h"

namespace duan::plan {

namespace {
const TypeRate* closest(const Profile& p, DType t) {
    auto it = p.rates.find(dtype_name(t));
    if (it != p.rates.end()) return &it->second;
    const bool is_float = t == DType::F32 || t == DType::F16 || t == DType::BF16;
    static const char* const kFloat[] = {"f16", "f32"};
    static const char* const kQuant[] = {"q8_0", "q4_0"};
    for (const char* alt : is_float ? kFloat : kQuant)
        if (auto a = p.rates.find(alt); a != p.rates.end()) return &a->second;
    return nullptr;
}
}  // namespace

double Profile::decode_eff(DType t) const {
    const TypeRate* r = closest(*this, t);
    if (!r || read_bw_gbs <= 0) return kDefaultDecodeEff;
    return r->decode_gbs / read_bw_gbs;
}

double Profile::prefill_eff(DType t) const {
    const TypeRate* r = closest(*this, t);
    if (!r || nominal_int8_gops <= 0) return kDefaultPrefillEff;
    return r->prefill_gops / nominal_int8_gops;
}

double Profile::sd_eff(DType t) const {
    const TypeRate* r = closest(*this, t);
    if (!r || r->gemm_gops <= 0 || nominal_int8_gops <= 0) return prefill_eff(t);
    return r->gemm_gops / nominal_int8_gops;
}

double Profile::sd_attn_eff() const {
    return sd_attn_gops > 0 && nominal_int8_gops > 0 ? sd_attn_gops / nominal_int8_gops : 0;
}

double Profile::attn_eff() const {
    if (attn_gops <= 0 || nominal_int8_gops <= 0) return prefill_eff(DType::F16);
    return attn_gops / nominal_int8_gops;
}

Profile calibrate(int threads, void (*log)(const std::string&)) {
    Profile p;
    p.threads = threads > 0 ? threads : default_thread_count();
    ThreadPool pool(p.threads);
    p.machine = cpu_model_name();
    p.isa = kernels::isa_name(kernels::active_isa());
    p.nominal_int8_gops = nominal_cpu_int8_gops(p.threads);
    p.read_bw_gbs = measure_read_bandwidth(pool) / 1e9;
    char buf[200];
    if (log) {
        std::snprintf(buf, sizeof buf,
                      "read bandwidth %.1f GB/s; nominal int8 peak %.0f Gop/s (%d threads, %s)",
                      p.read_bw_gbs, p.nominal_int8_gops, p.threads, p.isa.c_str());
        log(buf);
    }
    const int64_t K = 2048;
    // Decode streams weights from DRAM: the matrix must be several times the last-level cache
    // (96 MB is not: some servers' L3 holds a third of it, and f16 then "beats" the bandwidth),
    // but no more than 1 GiB nor an eighth of the RAM.
    const uint64_t ram = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE);
    const uint64_t dram_bytes =
        std::clamp<uint64_t>(4 * llc_bytes(), 96ull << 20, std::min<uint64_t>(1ull << 30, ram / 8));
    for (DType t : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K, DType::F16}) {
        // Decode: one activation row against that matrix.
        const int64_t rows_dram =
            std::max<int64_t>(256, static_cast<int64_t>(dram_bytes / dtype_row_bytes(t, K)));
        const MatmulRate d = measure_matmul(t, 1, K, rows_dram, pool, 0.25);
        // Prefill: a 64-token batch against a cache-sized matrix (compute-bound).
        const MatmulRate f = measure_matmul(t, 64, K, 512, pool, 0.2);
        // SD: 512 activation rows (a UNet level's pixels) against the same matrix.
        const MatmulRate g = measure_matmul(t, 512, K, 512, pool, 0.15);
        TypeRate r;
        r.decode_gbs = d.bytes_per_s() / 1e9;
        r.prefill_gops = f.ops_per_s() / 1e9;
        r.gemm_gops = g.ops_per_s() / 1e9;
        p.rates[dtype_name(t)] = r;
        if (log) {
            std::snprintf(buf, sizeof buf,
                          "%-5s decode %6.2f GB/s (eff %.2f)   prefill %7.1f Gop/s (eff %.3f)   "
                          "M=512 %7.1f Gop/s",
                          dtype_name(t), r.decode_gbs, r.decode_gbs / p.read_bw_gbs, r.prefill_gops,
                          r.prefill_gops / p.nominal_int8_gops, r.gemm_gops);
            log(buf);
        }
    }
    p.attn_gops = measure_attention(pool) / 1e9;
    p.sd_attn_gops = measure_sd_attention(pool) / 1e9;
    p.pool_call_us = measure_pool_call_us(pool);
    p.elem_ns = measure_elem_ns();
    if (log) {
        std::snprintf(buf, sizeof buf, "attention (f16 cache, 512 positions) %.1f Gop/s (eff %.3f)",
                      p.attn_gops, p.attn_eff());
        log(buf);
        std::snprintf(buf, sizeof buf,
                      "SD attention (8 heads of 40, 1024 x 1024) %.1f Gop/s (eff %.3f)",
                      p.sd_attn_gops, p.sd_attn_eff());
        log(buf);
        std::snprintf(buf, sizeof buf,
                      "pool call %.2f us; vector work %.2f ns/element (decode matrices %.0f MiB)",
                      p.pool_call_us, p.elem_ns, dram_bytes / 1048576.0);
        log(buf);
    }
    std::time_t now = std::time(nullptr);
    char ts[32];
    std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    p.created = ts;
    return p;
}

std::string default_profile_path() {
    if (const char* e = std::getenv("DUAN_PROFILE"); e && *e) return e;
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x)
        return std::string(x) + "/duan/profile.json";
    const char* home = std::getenv("HOME");
    return std::string(home && *home ? home : "/tmp") + "/.cache/duan/profile.json";
}

Profile load_profile(const std::string& path) {
    Profile p;
    std::ifstream in(path);
    if (!in) return p;
    std::ostringstream ss;
    ss << in.rdbuf();
    try {
        auto j = nlohmann::json::parse(ss.str());
        p.machine = j.value("machine", "");
        p.isa = j.value("isa", "");
        p.created = j.value("created", "");
        p.threads = j.value("threads", 0);
        p.attn_gops = j.value("attn_gops", 0.0);
        p.pool_call_us = j.value("pool_call_us", 0.0);
        p.elem_ns = j.value("elem_ns", 0.0);
        p.sd_attn_gops = j.value("sd_attn_gops", 0.0);
        p.read_bw_gbs = j.at("read_bw_gbs").get<double>();
        p.nominal_int8_gops = j.at("nominal_int8_gops").get<double>();
        for (const auto& [k, v] : j.at("rates").items()) {
            if (!dtype_from_name(k)) fail("unknown type '", k, "'");
            TypeRate r;
            r.decode_gbs = v.at("decode_gbs").get<double>();
            r.prefill_gops = v.at("prefill_gops").get<double>();
            r.gemm_gops = v.value("gemm_gops", 0.0);
            if (!(r.decode_gbs > 0 && r.prefill_gops > 0)) fail("rates of ", k, " must be > 0");
            p.rates[k] = r;
        }
        if (!(p.read_bw_gbs > 0 && p.nominal_int8_gops > 0))
            fail("read_bw_gbs and nominal_int8_gops must be > 0");
    } catch (const nlohmann::json::exception& e) {
        fail(path, ": not a duan profile (", e.what(), "); rerun duan plan --calibrate");
    } catch (const Error& e) {
        fail(path, ": ", e.what(), "; rerun duan plan --calibrate");
    }
    return p;
}

void save_profile(const Profile& p, const std::string& path) {
    nlohmann::json j;
    j["schema"] = "duan-profile/1";
    j["machine"] = p.machine;
    j["isa"] = p.isa;
    j["created"] = p.created;
    j["threads"] = p.threads;
    j["read_bw_gbs"] = p.read_bw_gbs;
    j["nominal_int8_gops"] = p.nominal_int8_gops;
    j["attn_gops"] = p.attn_gops;
    j["pool_call_us"] = p.pool_call_us;
    j["elem_ns"] = p.elem_ns;
    j["sd_attn_gops"] = p.sd_attn_gops;
    for (const auto& [k, r] : p.rates)
        j["rates"][k] = {{"decode_gbs", r.decode_gbs},
                         {"prefill_gops", r.prefill_gops},
                         {"gemm_gops", r.gemm_gops},
                         {"decode_eff", r.decode_gbs / p.read_bw_gbs},
                         {"prefill_eff", r.prefill_gops / p.nominal_int8_gops}};
    std::error_code ec;
    const auto dir = std::filesystem::path(path).parent_path();
    if (!dir.empty()) std::filesystem::create_directories(dir, ec);
    std::ofstream out(path);
    if (!out) fail(path, ": cannot write the profile");
    out << j.dump(2) << "\n";
    if (!out) fail(path, ": write failed");
}

SpeedPlan plan_speed(const ModelShape& m, const RunShape& r, const Device& d, const Profile& p,
                     int prompt_tokens, int answer_tokens) {
    SpeedPlan s;
    s.calibrated = !p.empty();
    s.prompt_tokens = prompt_tokens;
    s.answer_tokens = answer_tokens;
    const double bw = d.mem_bw_gbs * 1e9;
    // duan runs on the CPU: its int8 peak; GPUs (no CPU figure) fall back to the headline TOPS.
    const double cpu = d.cpu_int8_gops > 0 ? d.cpu_int8_gops * 1e9 : d.int8_tops * 1e12;
    const double tops = d.int8_tops * 1e12;
    const double P = std::max(1, prompt_tokens);

    // Per-token weight reads: every matrix, the output head (the tied embedding when there is no
    // output.weight); of token_embd only one row.
    double bytes = 0, t_decode = 0, flops = 0, t_prefill = 0;
    for (const auto& t : m.tensors) {
        const bool head =
            t.role == TensorRole::Output || (t.role == TensorRole::Embedding && m.tied_output);
        if (t.role == TensorRole::Vector) continue;
        if (t.role == TensorRole::Embedding && !m.tied_output) continue;
        bytes += static_cast<double>(t.bytes);
        t_decode += static_cast<double>(t.bytes) / (bw * p.decode_eff(t.type));
        // Prefill: the head runs for the last prompt token only.
        const double f = 2.0 * t.cols * t.rows * (head ? 1.0 : P);
        flops += f;
        t_prefill += f / (cpu * p.prefill_eff(t.type));
    }
    // KV cache read per token at the middle of the answer (the attention reads positions 0..pos).
    const double pos = std::min<double>(r.n_ctx, prompt_tokens + answer_tokens / 2.0);
    const double kv_row = static_cast<double>(dtype_row_bytes(r.cache_k, m.head_dim) +
                                              dtype_row_bytes(r.cache_v, m.head_dim));
    const double kv = m.n_layer * pos * m.n_head_kv * kv_row;
    bytes += kv;
    t_decode += kv / (bw * p.decode_eff(r.cache_k));
    // ... and computes 4·head_dim ops per cached position and query head.
    const double attn_tok = 4.0 * m.head_dim * m.n_head * m.n_layer * pos;
    if (!p.empty()) t_decode += attn_tok / (cpu * p.attn_eff());
    // ... and per layer, the pool calls and the serial vector work (measured at calibration).
    const double per_layer = kPoolCallsPerLayer * p.pool_call_us * 1e-6 +
                             (kElemsPerEmbd * m.n_embd + kElemsPerFf * m.n_ff) * p.elem_ns * 1e-9;
    t_decode += m.n_layer * per_layer;
    // Prefill attention: QK and PV over i+1 positions for token i, per head and layer.
    const double attn = 4.0 * m.head_dim * m.n_head * m.n_layer * P * (P + 1) / 2;
    flops += attn;
    t_prefill += attn / (cpu * (p.empty() ? kDefaultPrefillEff : p.attn_eff()));

    s.decode_bytes = bytes;
    s.prefill_flops = flops;
    s.naive_decode_tps = bw / bytes;
    s.naive_prefill_tps = tops > 0 ? P * tops / flops : 0;
    s.decode_tps = 1.0 / t_decode;
    s.prefill_tps = P / t_prefill;
    s.answer_seconds = P / s.prefill_tps + answer_tokens / s.decode_tps;
    s.naive_answer_seconds = (s.naive_prefill_tps > 0 ? P / s.naive_prefill_tps : 0) +
                             answer_tokens / s.naive_decode_tps;
    return s;
}

}  // namespace duan::plan
