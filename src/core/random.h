// Fast seeded random numbers for synthetic weights (duan synth, LLM and SD): not for sampling.
// Each row/tensor is seeded on its own (splitmix64 of a base seed + index), so the bytes written
// do not depend on the thread count.
#pragma once
#include <cmath>
#include <cstdint>

namespace duan {

inline uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

struct WyRand {
    uint64_t s;
    uint64_t next() {
        s += 0xa0761d6478bd642fULL;
        const __uint128_t t = static_cast<__uint128_t>(s) * (s ^ 0xe7037ed1a0b428dbULL);
        return static_cast<uint64_t>(t >> 64) ^ static_cast<uint64_t>(t);
    }
};

// Approximately N(0, stddev): the sum of four 16-bit uniforms (Irwin–Hall), one PRNG call each.
inline void fill_normal(float* dst, int64_t n, uint64_t seed, float stddev) {
    WyRand r{seed};
    // each 16-bit uniform has variance 65536^2/12; four of them: sd = 65536/sqrt(3)
    const float scale = stddev / (65536.0f / std::sqrt(3.0f));
    for (int64_t i = 0; i < n; ++i) {
        const uint64_t v = r.next();
        const int32_t s = static_cast<int32_t>((v & 0xffff) + ((v >> 16) & 0xffff) +
                                               ((v >> 32) & 0xffff) + (v >> 48)) -
                          2 * 65535;
        dst[i] = static_cast<float>(s) * scale;
    }
}

}  // namespace duan
