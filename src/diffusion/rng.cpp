#include "diffusion/rng.h"

#include <cmath>

#include "core/error.h"

namespace duan::diffusion {

Mt19937::Mt19937(uint32_t seed) {
    st_[0] = seed;
    for (uint32_t j = 1; j < 624; ++j) st_[j] = 1812433253u * (st_[j - 1] ^ (st_[j - 1] >> 30)) + j;
}

void Mt19937::twist() {
    for (int i = 0; i < 624; ++i) {
        const uint32_t y = (st_[i] & 0x80000000u) | (st_[(i + 1) % 624] & 0x7FFFFFFFu);
        st_[i] = st_[(i + 397) % 624] ^ (y >> 1) ^ ((st_[(i + 1) % 624] & 1u) ? 0x9908B0DFu : 0u);
    }
    idx_ = 0;
}

uint32_t Mt19937::next() {
    if (idx_ >= 624) twist();
    uint32_t y = st_[idx_++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9D2C5680u;
    y ^= (y << 15) & 0xEFC60000u;
    y ^= y >> 18;
    return y;
}

std::vector<float> TorchCpuRng::randn(size_t n) {
    std::vector<float> out(n);
    if (n < 16) {
        // PyTorch's scalar path: double Box-Muller with 53-bit uniforms, caching the second value.
        bool have = false;
        double cached = 0;
        for (size_t i = 0; i < n; ++i) {
            if (have) {
                out[i] = static_cast<float>(cached);
                have = false;
                continue;
            }
            uint64_t a = mt_.next(), b = mt_.next(), c = mt_.next(), d = mt_.next();
            const uint64_t m53 = (uint64_t{1} << 53) - 1;
            const double u1 = static_cast<double>(((a << 32) | b) & m53) / 9007199254740992.0;
            const double u2 = static_cast<double>(((c << 32) | d) & m53) / 9007199254740992.0;
            const double r = std::sqrt(-2.0 * std::log1p(-u2));
            const double th = 2.0 * M_PI * u1;
            out[i] = static_cast<float>(r * std::cos(th));
            cached = r * std::sin(th);
            have = true;
        }
        return out;
    }
    auto uniform = [&]() {
        return static_cast<float>(mt_.next() & 0xFFFFFFu) * (1.0f / 16777216.0f);
    };
    for (size_t i = 0; i < n; ++i) out[i] = uniform();
    auto fill16 = [](float* d) {
        for (int j = 0; j < 8; ++j) {
            const float u1 = 1.0f - d[j];
            const float u2 = d[j + 8];
            const float r = std::sqrt(-2.0f * logf(u1));
            const float th = 2.0f * static_cast<float>(M_PI) * u2;
            d[j] = r * cosf(th);
            d[j + 8] = r * sinf(th);
        }
    };
    for (size_t off = 0; off + 16 <= n; off += 16) fill16(out.data() + off);
    if (n % 16) {
        for (size_t i = n - 16; i < n; ++i) out[i] = uniform();
        fill16(out.data() + n - 16);
    }
    return out;
}

std::vector<float> PhiloxRng::randn(size_t n) {
    std::vector<float> out(n);
    const float two32inv = 2.3283064e-10f;
    const float two32inv2pi = 2.3283064e-10f * 6.2831855f;
    for (size_t i = 0; i < n; ++i) {
        uint32_t c0 = offset_, c1 = 0, c2 = static_cast<uint32_t>(i), c3 = 0;
        uint32_t k0 = static_cast<uint32_t>(seed_), k1 = static_cast<uint32_t>(seed_ >> 32);
        for (int r = 0; r < 10; ++r) {
            const uint64_t v1 = static_cast<uint64_t>(c0) * 0xD2511F53u;
            const uint64_t v2 = static_cast<uint64_t>(c2) * 0xCD9E8D57u;
            const uint32_t n0 = static_cast<uint32_t>(v2 >> 32) ^ c1 ^ k0;
            const uint32_t n1 = static_cast<uint32_t>(v2);
            const uint32_t n2 = static_cast<uint32_t>(v1 >> 32) ^ c3 ^ k1;
            const uint32_t n3 = static_cast<uint32_t>(v1);
            c0 = n0, c1 = n1, c2 = n2, c3 = n3;
            if (r < 9) k0 += 0x9E3779B9u, k1 += 0xBB67AE85u;
        }
        const float u = static_cast<float>(c0) * two32inv + two32inv / 2.0f;
        const float v = static_cast<float>(c1) * two32inv2pi + two32inv2pi / 2.0f;
        const float s = static_cast<float>(std::sqrt(-2.0 * std::log(static_cast<double>(u))));
        out[i] = static_cast<float>(static_cast<double>(s) * std::sin(static_cast<double>(v)));
    }
    ++offset_;
    return out;
}

std::unique_ptr<Rng> make_rng(const std::string& kind, uint64_t seed) {
    if (kind == "cpu") return std::make_unique<TorchCpuRng>(seed);
    if (kind == "cuda") return std::make_unique<PhiloxRng>(seed);
    fail("unknown --rng '", kind, "' (expected cpu or cuda)");
}

}  // namespace duan::diffusion
