// The x86 SIMD pieces of attend(), written once with 256-bit AVX2+FMA+F16C intrinsics and compiled
// twice (x86_attn.h): attn_avx2.cpp and attn_avx512.cpp, each defining DUAN_X86_NS. 256-bit on
// purpose: QK must reproduce that ISA's vec_dot_f16 (x86/quant_dot_body.h) bit for bit, and Zen 4
// runs 512-bit float ops as two 256-bit halves anyway.
//
// Not a normal header: no include guard, only for those two files.
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "kernels/blocks.h"
#include "kernels/ops.h"
#include "kernels/x86/x86_attn.h"

namespace duan::kernels::DUAN_X86_NS {
namespace {

inline __m256 load_f16(const uint8_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// The 8 lanes vec_dot_f16 reduces for one key: four accumulators over 32-element steps, 8-element
// steps into the first, then (acc0 + acc1) + (acc2 + acc3). n % 8 == 0.
inline __m256 qk_lanes(int64_t n, const uint8_t* k, const float* q) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm256_fmadd_ps(load_f16(k + 2 * i), _mm256_loadu_ps(q + i), acc0);
        acc1 = _mm256_fmadd_ps(load_f16(k + 2 * i + 16), _mm256_loadu_ps(q + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(load_f16(k + 2 * i + 32), _mm256_loadu_ps(q + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(load_f16(k + 2 * i + 48), _mm256_loadu_ps(q + i + 24), acc3);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(load_f16(k + 2 * i), _mm256_loadu_ps(q + i), acc0);
    return _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
}

// hsum_ps's tree for 8 vectors at once. hsum_ps(v) = ((v0+v4) + (v2+v6)) + ((v1+v5) + (v3+v7)):
//   step 1 (lo half + hi half) for two keys a, b: [a0+a4 .. a3+a7 | b0+b4 .. b3+b7]
//   step 2 (s0+s2, s1+s3) for four keys by shuffles: [ta0 ta1 tc0 tc1 | tb0 tb1 td0 td1]
//   step 3 (t0+t1) for eight keys by hadd:            [a c e g | b d f h]
// so feeding (a..h) = (k0, k4, k1, k5, k2, k6, k3, k7) leaves key u in lane u.
inline __m256 halves(__m256 a, __m256 b) {
    return _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
}
inline __m256 pairs(__m256 ab, __m256 cd) {
    return _mm256_add_ps(_mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
}

inline float hsum_ps(__m256 v) {  // as x86/quant_dot_body.h
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// exp_poly() (kernels/ops.h) in 8 lanes, operation for operation.
inline __m256 exp_poly8(__m256 x) {
    using namespace exp_poly_c;
    x = _mm256_max_ps(_mm256_set1_ps(kLo), x);  // max/min return the second operand for NaN
    x = _mm256_min_ps(_mm256_set1_ps(kHi), x);
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
    __m256 p = _mm256_set1_ps(kC[7]);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC[6]));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC[5]));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC[4]));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC[3]));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC[2]));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC[1]));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC[0]));
    const __m256i ni = _mm256_cvtps_epi32(n);  // NaN lanes: garbage exponent, but p is NaN
    const __m256i n1 = _mm256_srai_epi32(ni, 1);
    const __m256i n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

// out[d0 .. d0 + 8·NV) = sum_j p[j] * V_j[d0 ..]: the accumulators stay in registers over all j.
template <int NV>
void pv_block(const float* p, const uint8_t* v, size_t stride, int64_t n_kv, float* out) {
    __m256 acc[NV];
    for (int u = 0; u < NV; ++u) acc[u] = _mm256_setzero_ps();
    for (int64_t j = 0; j < n_kv; ++j) {
        if (p[j] == 0.0f) continue;
        const __m256 pj = _mm256_set1_ps(p[j]);
        const uint8_t* row = v + j * stride;
        for (int u = 0; u < NV; ++u)
            acc[u] = _mm256_add_ps(acc[u], _mm256_mul_ps(pj, load_f16(row + 16 * u)));
    }
    for (int u = 0; u < NV; ++u) _mm256_storeu_ps(out + 8 * u, acc[u]);
}

// One 32-element block column of quantized values: out[0..32) = sum_j p[j] · dequant(V_j block),
// each value dequantized as the scalar reference does (float(q) · d), then multiply, then add.
template <bool Q4>
void pv_q_block(const float* p, const uint8_t* v, size_t stride, int64_t n_kv, float* out) {
    __m256 acc[4];
    for (auto& a : acc) a = _mm256_setzero_ps();
    for (int64_t j = 0; j < n_kv; ++j) {
        if (p[j] == 0.0f) continue;
        const __m256 pj = _mm256_set1_ps(p[j]);
        const uint8_t* b = v + j * stride;
        uint16_t dh;
        std::memcpy(&dh, b, 2);
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(dh));
        __m128i lo, hi;  // elements 0..15, 16..31 as int8
        if constexpr (Q4) {
            const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2));
            const __m128i m = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
            lo = _mm_sub_epi8(_mm_and_si128(t, m), eight);
            hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(t, 4), m), eight);
        } else {
            lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2));
            hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 18));
        }
        const __m128i part[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
        for (int u = 0; u < 4; ++u) {
            const __m256 x = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(part[u])), d);
            acc[u] = _mm256_add_ps(acc[u], _mm256_mul_ps(pj, x));
        }
    }
    for (int u = 0; u < 4; ++u) _mm256_storeu_ps(out + 8 * u, acc[u]);
}

}  // namespace

void attn_pv_q8_0(int64_t n, const float* p, const uint8_t* v, size_t stride, int64_t n_kv,
                  float* out) {
    for (int64_t b = 0; b < n / QK8_0; ++b)
        pv_q_block<false>(p, v + b * sizeof(block_q8_0), stride, n_kv, out + b * QK8_0);
}

void attn_pv_q4_0(int64_t n, const float* p, const uint8_t* v, size_t stride, int64_t n_kv,
                  float* out) {
    for (int64_t b = 0; b < n / QK4_0; ++b)
        pv_q_block<true>(p, v + b * sizeof(block_q4_0), stride, n_kv, out + b * QK4_0);
}

void attn_qk_f16(int64_t n, const float* q, const uint8_t* k, size_t stride, int64_t n_kv,
                 float* s) {
    int64_t j = 0;
    for (; j + 8 <= n_kv; j += 8) {
        const uint8_t* kj = k + j * stride;
        const __m256 l0 = qk_lanes(n, kj, q), l4 = qk_lanes(n, kj + 4 * stride, q);
        const __m256 l1 = qk_lanes(n, kj + stride, q), l5 = qk_lanes(n, kj + 5 * stride, q);
        const __m256 r0 = pairs(halves(l0, l4), halves(l1, l5));
        const __m256 l2 = qk_lanes(n, kj + 2 * stride, q), l6 = qk_lanes(n, kj + 6 * stride, q);
        const __m256 l3 = qk_lanes(n, kj + 3 * stride, q), l7 = qk_lanes(n, kj + 7 * stride, q);
        const __m256 r1 = pairs(halves(l2, l6), halves(l3, l7));
        _mm256_storeu_ps(s + j, _mm256_hadd_ps(r0, r1));
    }
    for (; j < n_kv; ++j) s[j] = hsum_ps(qk_lanes(n, k + j * stride, q));
}

void attn_softmax(float* x, int64_t n, float scale, bool round_f16) {
    const __m256 vs = _mm256_set1_ps(scale);
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), vs);
        _mm256_storeu_ps(x + i, v);
        vmax = _mm256_max_ps(vmax, v);
    }
    alignas(32) float m8[8];
    _mm256_store_ps(m8, vmax);
    float mx = -INFINITY;
    for (float m : m8) mx = std::fmax(mx, m);
    for (; i < n; ++i) {
        x[i] *= scale;
        mx = std::fmax(mx, x[i]);
    }

    const __m256 vmx = _mm256_set1_ps(mx);
    __m256d sum0 = _mm256_setzero_pd(), sum1 = sum0;
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 e = exp_poly8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmx));
        _mm256_storeu_ps(x + i, e);
        sum0 = _mm256_add_pd(sum0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        sum1 = _mm256_add_pd(sum1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    alignas(32) double s4[4];
    _mm256_store_pd(s4, _mm256_add_pd(sum0, sum1));
    double sum = (s4[0] + s4[1]) + (s4[2] + s4[3]);
    for (; i < n; ++i) {
        x[i] = exp_poly(x[i] - mx);
        sum += x[i];
    }

    const float inv = static_cast<float>(1.0 / sum);
    const __m256 vinv = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), vinv);
        if (round_f16) v = _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
        _mm256_storeu_ps(x + i, v);
    }
    for (; i < n; ++i) {
        x[i] *= inv;
        if (round_f16) x[i] = fp16_to_fp32(fp32_to_fp16(x[i]));
    }
}

void attn_pv_f16(int64_t n, const float* p, const uint8_t* v, size_t stride, int64_t n_kv,
                 float* out) {
    int64_t d = 0;
    for (; d + 64 <= n; d += 64) pv_block<8>(p, v + 2 * d, stride, n_kv, out + d);
    if (d + 32 <= n) {
        pv_block<4>(p, v + 2 * d, stride, n_kv, out + d);
        d += 32;
    }
    for (; d + 8 <= n; d += 8) pv_block<1>(p, v + 2 * d, stride, n_kv, out + d);
}

void swiglu_f32(const float* g, const float* u, float* y, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 gv = _mm256_loadu_ps(g + i);
        const __m256 e = exp_poly8(_mm256_xor_ps(gv, sign));
        _mm256_storeu_ps(
            y + i, _mm256_mul_ps(_mm256_div_ps(gv, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
    }
    for (; i < n; ++i) y[i] = g[i] / (1.0f + exp_poly(-g[i])) * u[i];
}

void attn_axpy_f32(int64_t n, float a, const float* x, float* y) {
    const __m256 av = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i),
                                              _mm256_mul_ps(av, _mm256_loadu_ps(x + i))));
    for (; i < n; ++i) {
        const float t = a * x[i];  // kept apart from the add: no contraction into an FMA
        y[i] = y[i] + t;
    }
}

}  // namespace duan::kernels::DUAN_X86_NS
