// Short measurements of the machine duan runs on: memory read bandwidth and the kernels' matmul
// throughput per weight type, the inputs of `--device this` and of `duan plan --calibrate`.
#pragma once
#include <cstdint>
#include <string>

#include "core/dtype.h"
#include "core/thread_pool.h"

namespace duan::plan {

// Sustained read bandwidth (bytes/s): all threads sum a buffer of `bytes` (far larger than the
// last-level cache), best of several passes within ~`seconds`.
double measure_read_bandwidth(ThreadPool& pool, uint64_t bytes = 256ull << 20,
                              double seconds = 0.3);

struct MatmulRate {
    DType type = DType::Q4_0;
    int64_t m = 1;            // activation rows (1 = decode, ubatch = prefill)
    double seconds = 0;       // per call
    double weight_bytes = 0;  // bytes of W
    double ops = 0;           // 2·M·N·K
    double bytes_per_s() const { return weight_bytes / seconds; }
    double ops_per_s() const { return ops / seconds; }
};

// Times kernels::matmul of a [n_rows × k] weight of `type` (random values, quantized) with m
// activation rows; best of repeated calls over ~`seconds`.
MatmulRate measure_matmul(DType type, int64_t m, int64_t k, int64_t n_rows, ThreadPool& pool,
                          double seconds = 0.2);

// Attention throughput (ops/s, 4·head_dim per cached position): every thread runs attend() for
// queries over n_kv cached positions of `cache` type, as a prefill does.
double measure_attention(ThreadPool& pool, int64_t head_dim = 64, int64_t n_kv = 512,
                         DType cache = DType::F16, double seconds = 0.15);

// Stable Diffusion's attention (diffusion::attention, f32, per head K and Vᵀ packed, 32-row query
// blocks): ops/s counting 4·head_dim per score, for `heads` heads over L queries and L keys.
double measure_sd_attention(ThreadPool& pool, int head_dim = 40, int heads = 8, int64_t L = 1024,
                            double seconds = 0.2);

// Latency of one ThreadPool::run as a decode step issues it (microseconds): the caller writes a
// 16 KiB activation row, every index reads its share; the median over many calls (wake-ups and
// barriers matter, not the best case).
double measure_pool_call_us(ThreadPool& pool);
// Serial vector work per element (nanoseconds): rms_norm, SwiGLU and Q8_0 activation quantizing
// over rows of 4096, as one thread of a decode step runs them.
double measure_elem_ns();
// Bytes of the last-level cache as this machine reports it (the largest of sysconf and sysfs; a
// VM may report the host's); 32 MiB if unknown.
uint64_t llc_bytes();

// Nominal int8 peak of this CPU, 10^9 ops/s: threads × max clock (from /proc/cpuinfo) × int8
// ops per cycle of the kernels' ISA (docs/DEVICES.md, "CPU int8 peaks").
double nominal_cpu_int8_gops(int threads);
double cpu_max_ghz();
std::string cpu_model_name();

}  // namespace duan::plan
