#include "plan/probe.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <vector>

#include "diffusion/nn.h"
#include "kernels/attention.h"
#include "kernels/isa.h"
#include "kernels/kernels.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"

namespace duan::plan {

namespace {
double now() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}
}  // namespace

double measure_read_bandwidth(ThreadPool& pool, uint64_t bytes, double seconds) {
    const size_t n = bytes / sizeof(uint64_t);
    std::vector<uint64_t> buf(n);
    // Touch every page first (and in parallel, so each thread's part is local to it).
    pool.parallel_for(static_cast<int64_t>(n), [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) buf[i] = static_cast<uint64_t>(i);
    });
    std::vector<uint64_t> sink(pool.size());
    double best = 0;
    const double t_end = now() + seconds;
    int passes = 0;
    do {
        const double t0 = now();
        pool.run([&](int ith, int nth) {
            const size_t b = n * ith / nth, e = n * (ith + 1) / nth;
            // Four independent accumulators so the adds don't serialize; the compiler vectorizes.
            uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            size_t i = b;
            for (; i + 4 <= e; i += 4) {
                s0 += buf[i];
                s1 += buf[i + 1];
                s2 += buf[i + 2];
                s3 += buf[i + 3];
            }
            for (; i < e; ++i) s0 += buf[i];
            sink[ith] = s0 + s1 + s2 + s3;
        });
        const double dt = now() - t0;
        best = std::max(best, static_cast<double>(n * sizeof(uint64_t)) / dt);
        ++passes;
    } while (now() < t_end || passes < 2);
    volatile uint64_t keep = 0;
    for (auto s : sink) keep = keep + s;
    (void)keep;
    return best;
}

MatmulRate measure_matmul(DType type, int64_t m, int64_t k, int64_t n_rows, ThreadPool& pool,
                          double seconds) {
    MatmulRate r;
    r.type = type;
    r.m = m;
    const size_t row_bytes = dtype_row_bytes(type, k);
    // Quantize a small tile of random rows and repeat it: the speed of a dot product does not
    // depend on the values, and quantizing megabytes would take longer than the measurement.
    std::mt19937 rng(42);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const int64_t tile = 16;
    std::vector<float> src(static_cast<size_t>(k));
    std::vector<uint8_t> tile_bytes(row_bytes * tile);
    for (int64_t r0 = 0; r0 < tile; ++r0) {
        for (auto& v : src) v = nd(rng) * 0.05f;
        kernels::quantize_row(type, src.data(), tile_bytes.data() + r0 * row_bytes, k);
    }
    std::vector<uint8_t> w(row_bytes * static_cast<size_t>(n_rows));
    for (int64_t r0 = 0; r0 < n_rows; ++r0)
        std::memcpy(w.data() + r0 * row_bytes, tile_bytes.data() + (r0 % tile) * row_bytes,
                    row_bytes);
    std::vector<float> x(static_cast<size_t>(m * k)), y(static_cast<size_t>(m * n_rows));
    for (auto& v : x) v = nd(rng);
    kernels::Weight W;
    W.type = type;
    W.n_cols = k;
    W.n_rows = n_rows;
    W.row_bytes = row_bytes;
    W.data = w.data();
    kernels::matmul(W, x.data(), m, y.data(), pool);  // warm-up (pages, caches, threads)
    double best = 1e30;
    const double t_end = now() + seconds;
    int calls = 0;
    do {
        const double t0 = now();
        kernels::matmul(W, x.data(), m, y.data(), pool);
        best = std::min(best, now() - t0);
        ++calls;
    } while (now() < t_end || calls < 2);
    r.seconds = best;
    r.weight_bytes = static_cast<double>(w.size());
    r.ops = 2.0 * static_cast<double>(m) * static_cast<double>(n_rows) * static_cast<double>(k);
    return r;
}

double measure_sd_attention(ThreadPool& pool, int head_dim, int heads, int64_t L, double seconds) {
    const int64_t C = static_cast<int64_t>(head_dim) * heads;
    std::vector<float> q(static_cast<size_t>(L * C)), k(q.size()), v(q.size()), out(q.size());
    std::mt19937 rng(11);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (auto* b : {&q, &k, &v})
        for (auto& x : *b) x = nd(rng);
    auto once = [&] {
        diffusion::attention(pool, q.data(), C, k.data(), C, v.data(), C, out.data(), L, L, heads,
                             head_dim, false);
    };
    once();
    double best = 1e30;
    const double t_end = now() + seconds;
    do {
        const double t0 = now();
        once();
        best = std::min(best, now() - t0);
    } while (now() < t_end);
    return 4.0 * head_dim * heads * L * L / best;
}

double measure_attention(ThreadPool& pool, int64_t head_dim, int64_t n_kv, DType cache,
                         double seconds) {
    const size_t row = dtype_row_bytes(cache, head_dim);
    std::vector<uint8_t> k(row * n_kv), v(row * n_kv);
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> src(static_cast<size_t>(head_dim));
    for (int64_t j = 0; j < n_kv; ++j) {
        for (auto& x : src) x = nd(rng);
        kernels::quantize_row(cache, src.data(), k.data() + j * row, head_dim);
        for (auto& x : src) x = nd(rng);
        kernels::quantize_row(cache, src.data(), v.data() + j * row, head_dim);
    }
    kernels::KVView kv;
    kv.k = k.data();
    kv.v = v.data();
    kv.k_stride = kv.v_stride = row;
    kv.k_type = kv.v_type = cache;
    std::vector<kernels::AttnScratch> scratch(pool.size());
    const int64_t per_thread = 32;
    auto once = [&] {
        pool.run([&](int ith, int) {
            std::vector<float> q(static_cast<size_t>(head_dim), 0.5f), out(q.size());
            for (int64_t i = 0; i < per_thread; ++i)
                kernels::attend(q.data(), head_dim, kv, n_kv, 0.125f, out.data(), scratch[ith]);
        });
    };
    once();
    double best = 1e30;
    const double t_end = now() + seconds;
    int calls = 0;
    do {
        const double t0 = now();
        once();
        best = std::min(best, now() - t0);
        ++calls;
    } while (now() < t_end || calls < 2);
    return 4.0 * head_dim * n_kv * per_thread * pool.size() / best;
}

double measure_pool_call_us(ThreadPool& pool) {
    std::vector<float> x(4096, 1.0f);
    std::vector<float> part(static_cast<size_t>(pool.size()) * 16);
    const int calls = 3000;
    std::vector<double> t(calls);
    for (int c = 0; c < calls; ++c) {
        const double t0 = now();
        for (auto& v : x) v += 1.0f;  // the caller produced the activations
        pool.run([&](int ith, int nth) {
            const size_t b = x.size() * ith / nth, e = x.size() * (ith + 1) / nth;
            float s = 0;
            for (size_t i = b; i < e; ++i) s += x[i];
            part[static_cast<size_t>(ith) * 16] = s;
        });
        t[c] = now() - t0;
    }
    std::nth_element(t.begin(), t.begin() + calls / 2, t.end());
    return t[calls / 2] * 1e6;
}

double measure_elem_ns() {
    const int64_t n = 4096;
    std::vector<float> g(n), u(n), y(n), w(n, 1.0f);
    std::vector<uint8_t> q(dtype_row_bytes(DType::Q8_0, n));
    for (int64_t i = 0; i < n; ++i) {
        g[i] = std::sin(0.01f * static_cast<float>(i));
        u[i] = std::cos(0.02f * static_cast<float>(i));
    }
    double best = 1e30;
    for (int rep = 0; rep < 200; ++rep) {
        const double t0 = now();
        kernels::rms_norm(g.data(), w.data(), y.data(), n, 1e-6f);
        kernels::swiglu(g.data(), u.data(), y.data(), n);
        kernels::quantize_activation_row(DType::Q8_0, y.data(), q.data(), n);
        best = std::min(best, now() - t0);
    }
    return best / (3.0 * n) * 1e9;
}

uint64_t llc_bytes() {
    uint64_t best = 0;
#ifdef _SC_LEVEL3_CACHE_SIZE
    const long sc = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (sc > 0) best = static_cast<uint64_t>(sc);
#endif
    for (const char* idx : {"index3", "index2"}) {
        std::ifstream f(std::string("/sys/devices/system/cpu/cpu0/cache/") + idx + "/size");
        std::string v;
        if (!(f >> v) || v.empty()) continue;
        uint64_t b = std::strtoull(v.c_str(), nullptr, 10);
        if (v.back() == 'K') b <<= 10;
        if (v.back() == 'M') b <<= 20;
        best = std::max(best, b);
    }
    return best ? best : 32ull << 20;
}

double cpu_max_ghz() {
    // cpuinfo_max_freq when cpufreq is exposed, else the fastest "cpu MHz" line.
    std::ifstream f("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq");
    double khz = 0;
    if (f >> khz && khz > 0) return khz / 1e6;
    std::ifstream c("/proc/cpuinfo");
    std::string line;
    double best = 0;
    while (std::getline(c, line))
        if (line.rfind("cpu MHz", 0) == 0) {
            auto p = line.find(':');
            if (p != std::string::npos) best = std::max(best, std::atof(line.c_str() + p + 1));
        }
    return best > 0 ? best / 1e3 : 2.0;  // unknown: assume 2 GHz
}

std::string cpu_model_name() {
    std::ifstream c("/proc/cpuinfo");
    std::string line;
    while (std::getline(c, line))
        if (line.rfind("model name", 0) == 0 || line.rfind("Model", 0) == 0) {
            auto p = line.find(':');
            if (p != std::string::npos) return line.substr(std::min(line.size(), p + 2));
        }
    return "unknown CPU";
}

double nominal_cpu_int8_gops(int threads) {
    // int8 multiply-adds per cycle per core × 2 ops, for the instruction the kernels use:
    // AVX-512 VNNI vpdpbusd (one 512-bit or two 256-bit per cycle: 64 MACs), AVX2/AVX-512
    // vpmaddubsw+vpmaddwd (~32 MACs), NEON sdot (two 128-bit pipes: 32 MACs), i8mm smmla (64),
    // plain NEON widening multiplies (16), scalar (2).
    double macs = 2;
    switch (kernels::active_isa()) {
        case kernels::Isa::AVX512_VNNI:
            macs = 64;
            break;
        case kernels::Isa::AVX512:
            macs = 32;
            break;
        case kernels::Isa::AVX2:
            macs = 32;
            break;
        case kernels::Isa::NEON_I8MM:
            macs = 64;
            break;
        case kernels::Isa::NEON_DOTPROD:
            macs = 32;
            break;
        case kernels::Isa::NEON:
            macs = 16;
            break;
        case kernels::Isa::Scalar:
            macs = 2;
            break;
    }
    return threads * cpu_max_ghz() * macs * 2;
}

}  // namespace duan::plan
