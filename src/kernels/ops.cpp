#include "kernels/ops.h"

#include <cmath>

#include "kernels/isa.h"
#include "kernels/x86/x86_attn.h"

namespace duan::kernels {

void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
    const float mean = static_cast<float>(sum / static_cast<double>(n));
    const float scale = 1.0f / std::sqrt(mean + eps);
    if (w) {
        for (int64_t i = 0; i < n; ++i) y[i] = (x[i] * scale) * w[i];
    } else {
        for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale;
    }
}

void rope_table(float* cos_out, float* sin_out, int64_t n_rot, int32_t pos, float freq_base,
                float freq_scale, const float* freq_factors) {
    // theta_i = pos * base^(-2i/n_rot), built by repeated multiplication as the reference does.
    const float theta_scale = std::pow(freq_base, -2.0f / static_cast<float>(n_rot));
    float theta = static_cast<float>(pos);
    for (int64_t i = 0; i < n_rot / 2; ++i) {
        const float ff = freq_factors ? freq_factors[i] : 1.0f;
        const float t = freq_scale * (theta / ff);
        cos_out[i] = std::cos(t);
        sin_out[i] = std::sin(t);
        theta *= theta_scale;
    }
}

void rope_apply(float* x, int64_t n_rot, const float* c, const float* s, bool neox) {
    const int64_t half = n_rot / 2;
    if (neox) {
        for (int64_t i = 0; i < half; ++i) {
            const float x0 = x[i], x1 = x[i + half];
            x[i] = x0 * c[i] - x1 * s[i];
            x[i + half] = x0 * s[i] + x1 * c[i];
        }
    } else {
        for (int64_t i = 0; i < half; ++i) {
            const float x0 = x[2 * i], x1 = x[2 * i + 1];
            x[2 * i] = x0 * c[i] - x1 * s[i];
            x[2 * i + 1] = x0 * s[i] + x1 * c[i];
        }
    }
}

void rope(float* x, int64_t n_rot, int32_t pos, float freq_base, float freq_scale, bool neox,
          const float* freq_factors) {
    float c[512], s[512];  // n_rot <= 1024 (checked by the loader via head_dim limits)
    rope_table(c, s, n_rot, pos, freq_base, freq_scale, freq_factors);
    rope_apply(x, n_rot, c, s, neox);
}

namespace {
using SwigluFn = void (*)(const float*, const float*, float*, int64_t);
void swiglu_scalar(const float* g, const float* u, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = g[i] / (1.0f + exp_poly(-g[i])) * u[i];
}
SwigluFn pick_swiglu() {
#if defined(__x86_64__)
    const Isa isa = active_isa();
    if (isa_supports(isa, Isa::AVX512_VNNI)) return avx512vnni::swiglu_f32;
    if (isa_supports(isa, Isa::AVX2)) return avx2::swiglu_f32;
#endif
    return swiglu_scalar;
}
}  // namespace

// exp_poly rather than std::exp: the SIMD version computes the same bits (one FFN layer of a
// 0.5B model is 4864 of these per token; 512-token prefill, 2.5M per layer).
void swiglu(const float* g, const float* u, float* y, int64_t n) {
    static const SwigluFn fn = pick_swiglu();
    fn(g, u, y, n);
}

void softmax(float* x, int64_t n, float scale) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; ++i) {
        x[i] *= scale;
        mx = std::fmax(mx, x[i]);
    }
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        x[i] = exp_poly(x[i] - mx);
        sum += x[i];
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

}  // namespace duan::kernels
