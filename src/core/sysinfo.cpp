#include "core/sysinfo.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <barrier>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace duan::sysinfo {

namespace {

// A "Key:   1234 kB" line of /proc/self/status, in bytes.
uint64_t proc_status_kb(const char* key) {
    std::ifstream f("/proc/self/status");
    std::string line;
    const size_t n = std::strlen(key);
    while (std::getline(f, line))
        if (line.compare(0, n, key) == 0 && line.size() > n && line[n] == ':')
            return std::strtoull(line.c_str() + n + 1, nullptr, 10) * 1024;
    return 0;
}

// Sum of the buffer as 64-bit words; 8 independent accumulators so the loop is bound by loads.
uint64_t sum_generic(const uint64_t* p, size_t n_words) {
    uint64_t a[8] = {};
    size_t i = 0;
    for (; i + 8 <= n_words; i += 8)
        for (int k = 0; k < 8; ++k) a[k] += p[i + k];
    for (; i < n_words; ++i) a[0] += p[i];
    uint64_t s = 0;
    for (uint64_t x : a) s += x;
    return s;
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) uint64_t sum_avx2(const uint64_t* p, size_t n_words) {
    const __m256i* v = reinterpret_cast<const __m256i*>(p);
    const size_t n = n_words / 4;  // 32-byte vectors; the buffer is 64-byte aligned
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        a0 = _mm256_add_epi64(a0, _mm256_load_si256(v + i));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256(v + i + 1));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256(v + i + 2));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256(v + i + 3));
    }
    a0 = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    alignas(32) uint64_t t[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(t), a0);
    return t[0] + t[1] + t[2] + t[3] + sum_generic(p + i * 4, n_words - i * 4);
}
#endif

uint64_t sum_words(const uint64_t* p, size_t n_words) {
#if defined(__x86_64__)
    static const bool avx2 = __builtin_cpu_supports("avx2");
    if (avx2) return sum_avx2(p, n_words);
#endif
    return sum_generic(p, n_words);
}

}  // namespace

uint64_t peak_rss_bytes() {
    if (uint64_t v = proc_status_kb("VmHWM")) return v;
    struct rusage ru {};
    if (getrusage(RUSAGE_SELF, &ru) == 0) return static_cast<uint64_t>(ru.ru_maxrss) * 1024;
    return 0;
}

uint64_t current_rss_bytes() {
    return proc_status_kb("VmRSS");
}

uint64_t total_ram_bytes() {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
}

std::string cpu_model() {
    std::ifstream f("/proc/cpuinfo");
    std::string line;
    while (std::getline(f, line)) {
        // x86: "model name : ..."; some arm kernels: "Hardware : ..." / "CPU part"
        if (line.rfind("model name", 0) == 0 || line.rfind("Hardware", 0) == 0) {
            const size_t c = line.find(':');
            if (c == std::string::npos) continue;
            size_t b = line.find_first_not_of(" \t", c + 1);
            return b == std::string::npos ? "unknown" : line.substr(b);
        }
    }
    return "unknown";
}

Bandwidth measure_read_bandwidth(int n_threads, size_t buffer_bytes, int passes) {
    n_threads = std::max(1, n_threads);
    passes = std::max(1, passes);
    const size_t chunk = 4096;  // each thread's slice is a whole number of pages
    buffer_bytes = std::max(buffer_bytes / (chunk * n_threads), size_t{1}) * chunk * n_threads;
    struct Free {
        void operator()(void* p) const { std::free(p); }
    };
    std::unique_ptr<uint64_t, Free> buf(
        static_cast<uint64_t*>(std::aligned_alloc(64, buffer_bytes)));
    if (!buf) return {};
    const size_t n_words = buffer_bytes / 8, per = n_words / static_cast<size_t>(n_threads);

    std::vector<double> seconds;
    std::vector<uint64_t> sink(static_cast<size_t>(n_threads));
    std::chrono::steady_clock::time_point t0;
    // Phase 0 of each pass: the main thread starts the clock; phase 1: all threads read; the
    // completion of the second barrier stops it.
    std::barrier start(n_threads, [&]() noexcept { t0 = std::chrono::steady_clock::now(); });
    std::barrier stop(n_threads, [&]() noexcept {
        seconds.push_back(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    });
    auto work = [&](int ith) {
        uint64_t* p = buf.get() + per * static_cast<size_t>(ith);
        // First touch by the thread that reads the slice (page faults are not timed).
        for (size_t i = 0; i < per; ++i) p[i] = i;
        for (int k = 0; k <= passes; ++k) {  // pass 0 warms up (TLB, frequency)
            start.arrive_and_wait();
            sink[static_cast<size_t>(ith)] += sum_words(p, per);
            stop.arrive_and_wait();
        }
    };
    std::vector<std::thread> th;
    for (int i = 1; i < n_threads; ++i) th.emplace_back(work, i);
    work(0);
    for (auto& t : th) t.join();
    volatile uint64_t keep = 0;
    for (uint64_t s : sink) keep = keep + s;
    (void)keep;
    const double best = *std::min_element(seconds.begin() + 1, seconds.end());
    return {static_cast<double>(buffer_bytes) / best / 1e9, buffer_bytes, n_threads, passes};
}

}  // namespace duan::sysinfo
