// Element-wise and row operations of the transformer block, in f32. Their arithmetic follows the
// reference engine (sums of squares and softmax denominators in double, RoPE angles by repeated
// float multiplication) so that logits agree to float rounding.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace duan::kernels {

// y = x / sqrt(mean(x²) + eps) * w  (w may be nullptr: no scale). y may alias x.
void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps);

// RoPE on one head vector of head_dim elements at position `pos`; only the first n_rot elements
// rotate. neox: pairs (i, i + n_rot/2), else (2i, 2i+1). freq_factors (optional, n_rot/2) divide
// the angle per pair (Llama 3.1).
void rope(float* x, int64_t n_rot, int32_t pos, float freq_base, float freq_scale, bool neox,
          const float* freq_factors);
// Precomputed form for many heads at one position: cos/sin tables of n_rot/2 entries.
void rope_table(float* cos_out, float* sin_out, int64_t n_rot, int32_t pos, float freq_base,
                float freq_scale, const float* freq_factors);
void rope_apply(float* x, int64_t n_rot, const float* cos_t, const float* sin_t, bool neox);

// y = silu(g) * u, element-wise (SwiGLU).
void swiglu(const float* g, const float* u, float* y, int64_t n);

// exp(x) in float, written so that SIMD lanes compute the same bits (x86/attn_body.h): x = n·ln2 +
// r with n = nearest(x·log2e) and r by two FMAs (Cody-Waite), e^r by the degree-7 Taylor polynomial
// (Horner, FMA; truncation < 0.1 ulp for |r| <= ln2/2), then ·2^(n>>1)·2^(n-(n>>1)), two exact
// power-of-two steps so that subnormal results round once. Within 1 ulp of the correctly rounded
// exp (tested); 0 for x <= -104, inf for x >= 89, NaN for NaN.
namespace exp_poly_c {
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693145751953125f;       // 15 significant bits: n·kLn2Hi is exact
constexpr float kLn2Lo = 1.42860682030941723e-6f;  // ln2 - kLn2Hi
constexpr float kLo = -104.0f, kHi = 89.0f;
constexpr float kC[8] = {1.0f,      1.0f,       0.5f,       1.0f / 6,
                         1.0f / 24, 1.0f / 120, 1.0f / 720, 1.0f / 5040};
}  // namespace exp_poly_c

inline float exp_poly(float x) {
    using namespace exp_poly_c;
    x = x < kLo ? kLo : x;  // comparisons are false for NaN: it stays NaN and propagates
    x = x > kHi ? kHi : x;
    const float n = std::nearbyint(x * kLog2e);
    float r = std::fma(-n, kLn2Hi, x);
    r = std::fma(-n, kLn2Lo, r);
    float p = kC[7];
    for (int i = 6; i >= 0; --i) p = std::fma(p, r, kC[i]);
    const int ni = x == x ? static_cast<int>(n) : 0;
    const int n1 = ni >> 1, n2 = ni - n1;
    auto pow2 = [](int e) {
        const uint32_t b = static_cast<uint32_t>(e + 127) << 23;
        float f;
        std::memcpy(&f, &b, 4);
        return f;
    };
    return p * pow2(n1) * pow2(n2);
}

// In place: x = softmax(x * scale) over n entries: the maximum, exp_poly(x - max), the sum in
// double, then x · (1/sum). The scalar reference of x86 attn_softmax.
void softmax(float* x, int64_t n, float scale);

}  // namespace duan::kernels
