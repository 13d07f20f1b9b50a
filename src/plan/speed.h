// Speed model. Decode is memory-bound: time per token = bytes read per token / effective bandwidth
// (every matrix once, plus the KV cache up to the current position), plus the attention compute
// at that depth and a fixed per-layer cost (thread-pool calls, the serial vector work). Prefill is
// compute-bound: time = FLOPs / effective compute (2·params per token for the matrices, plus
// attention).
//
// "naive" uses the spec sheet as is: bandwidth = peak memory bandwidth, compute = headline INT8
// TOPS (so comparing two devices gives the TOPS ratio). "calibrated" applies this machine's
// measured efficiency factors (duan plan --calibrate, a Profile) per weight type:
//   decode_eff(T)  = duan's matmul bytes/s at M=1 on type T / this machine's read bandwidth
//   prefill_eff(T) = duan's matmul ops/s at M=64 on type T / this CPU's nominal int8 peak
// and, since duan computes on the CPU, uses the device's CPU int8 peak for prefill (the headline
// TOPS only where a device lists no CPU figure, i.e. the GPUs).
#pragma once
#include <map>
#include <string>

#include "plan/device.h"
#include "plan/memory.h"

namespace duan::plan {

struct TypeRate {
    double decode_gbs = 0;    // matmul M=1, weights from DRAM: 10^9 weight bytes/s
    double prefill_gops = 0;  // matmul M=64: 10^9 ops/s
    double gemm_gops = 0;     // matmul M=512 (SD's convs and projections); 0 = not measured
};

struct Profile {
    std::string machine, isa, created;
    int threads = 0;
    double read_bw_gbs = 0;                 // measured
    double nominal_int8_gops = 0;           // this CPU's int8 peak (probe.h)
    std::map<std::string, TypeRate> rates;  // by weight type name
    double attn_gops = 0;  // measured attend() throughput, f16 cache (0 = not measured)
    // Per-token costs outside the matrices (0 = not measured: profiles older than these fields).
    double pool_call_us = 0;  // one ThreadPool::run of a decode step (publish, wake, barrier)
    double elem_ns = 0;       // per element of the serial vector work (norms, SwiGLU, quantizing)
    // Stable Diffusion's attention (probe.h measure_sd_attention: 8 heads of 40, 1024 × 1024):
    // 10^9 ops/s at 4·head_dim per score (0 = not measured: the GEMM rate is used).
    double sd_attn_gops = 0;
    bool empty() const { return rates.empty(); }
    // Efficiency for a type; types not measured use the closest measured one (f16 for float
    // types, q8_0 for the rest), else the defaults below.
    double decode_eff(DType t) const;
    double prefill_eff(DType t) const;
    double attn_eff() const;  // attn_gops / nominal peak
    // Stable Diffusion: gemm_gops / nominal peak (prefill_eff when not measured).
    double sd_eff(DType t) const;
    double sd_attn_eff() const;  // sd_attn_gops / nominal peak (0 when not measured)
};

// Used when no profile exists (typical of a SIMD CPU engine; docs/PLANNING.md).
constexpr double kDefaultDecodeEff = 0.6;
constexpr double kDefaultPrefillEff = 0.3;

// Runs the short benchmark (~5 s): read bandwidth, then per type an M=1 matmul over a matrix
// several times the last-level cache and an M=64 matmul, attention, the pool's call latency and the
// vector work. `log` (may be null) gets one line per measurement.
Profile calibrate(int threads, void (*log)(const std::string&) = nullptr);
std::string default_profile_path();             // $DUAN_PROFILE, else ~/.cache/duan/profile.json
Profile load_profile(const std::string& path);  // empty Profile if the file does not exist
void save_profile(const Profile& p, const std::string& path);

// Thread-pool calls per layer of a decode step (Context::eval_ubatch: wq, wo, gate, up, down and
// attention; the small K/V projections run on the calling thread) and elements of serial vector
// work per layer in units of n_embd and n_ff (2 norms, 2 residual adds, 5 activation rows
// quantized; SwiGLU and the w_down activation row).
constexpr double kPoolCallsPerLayer = 6;
constexpr double kElemsPerEmbd = 9, kElemsPerFf = 2;

struct SpeedPlan {
    double decode_bytes = 0;   // per token, at the middle of the answer
    double prefill_flops = 0;  // for the prompt
    double naive_decode_tps = 0, naive_prefill_tps = 0;
    double decode_tps = 0, prefill_tps = 0;  // calibrated (or default factors)
    bool calibrated = false;
    double answer_seconds = 0;  // prefill the prompt + decode the answer (calibrated)
    double naive_answer_seconds = 0;
    int prompt_tokens = 0, answer_tokens = 0;
};

SpeedPlan plan_speed(const ModelShape& m, const RunShape& r, const Device& d, const Profile& p,
                     int prompt_tokens = 512, int answer_tokens = 2048);

}  // namespace duan::plan
