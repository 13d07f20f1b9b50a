// The NEON dot products, compiled once per variant: the including file defines DUAN_ARM_VARIANT
// (the namespace) and its -march decides dot16(): vdotq_s32 where __ARM_FEATURE_DOTPROD is
// defined, vmull_s8 + vpadalq_s16 otherwise. See neon_kernels.h for the exactness contract: the
// integer sums are exact, and every float expression below copies the scalar reference's
// (scalar_q_legacy.cpp / scalar_q_k.cpp) operand order, so results are bit-identical to it.
//
// Layout reminders (kernels/blocks.h): legacy blocks hold element j in the low nibble of qs[j]
// and j+16 in the high nibble; K-quant layouts are described at each kernel.
#ifndef DUAN_ARM_VARIANT
#error "define DUAN_ARM_VARIANT (the namespace) before including neon_dots.inl"
#endif

#include <arm_neon.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/fp16.h"
#include "kernels/arm/neon_kernels.h"
#include "kernels/blocks.h"

namespace duan::kernels::arm::DUAN_ARM_VARIANT {
namespace {

// acc (4 lanes) += products of 16 int8 pairs, grouped into lanes in some order; callers only use
// the sum over all lanes (or a per-sub-block scale applied to all lanes alike).
inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(acc, a, b);
#else
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_high_s8(a, b));
#endif
}

inline int32x4_t dot32(int8x16_t a0, int8x16_t a1, const int8_t* y) {
    return dot16(dot16(vdupq_n_s32(0), a0, vld1q_s8(y)), a1, vld1q_s8(y + 16));
}

// The Q8_0 reference's int8 lanes: lane l = the sum of the 4 products of elements 4l..4l+3 (of
// these 16), exactly the lanes of vdotq_s32 / x86's vpdpbusd.
inline int32x4_t dot16_lanes4(int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(vdupq_n_s32(0), a, b);
#else
    // vpaddlq: [p0+p1, p2+p3, p4+p5, p6+p7]; vpaddq_s32 then pairs those: [p0..3, p4..7, ...].
    const int32x4_t l = vpaddlq_s16(vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    const int32x4_t h = vpaddlq_s16(vmull_high_s8(a, b));
    return vpaddq_s32(l, h);
#endif
}

// Q8_0 accumulation as the reference sums it (scalar_q_legacy.cpp, x86/quant_dot_body.h): 8 float
// lanes (lo = lanes 0..3, elements 0..15; hi = lanes 4..7), one FMA per 32-block with
// d = d_w * d_a; then lanes 0..3 + lanes 4..7, then [0]+[2] and [1]+[3], then those two.
struct Q8Lanes {
    float32x4_t lo = vdupq_n_f32(0.0f), hi = vdupq_n_f32(0.0f);
    void add(const int8_t* w, const int8_t* a, float d) {
        add(vld1q_s8(w), vld1q_s8(w + 16), vld1q_s8(a), vld1q_s8(a + 16), d);
    }
    void add(int8x16_t w0, int8x16_t w1, int8x16_t a0, int8x16_t a1, float d) {
        const float32x4_t vd = vdupq_n_f32(d);
        lo = vfmaq_f32(lo, vd, vcvtq_f32_s32(dot16_lanes4(w0, a0)));
        hi = vfmaq_f32(hi, vd, vcvtq_f32_s32(dot16_lanes4(w1, a1)));
    }
    float sum() const {
        const float32x4_t r = vaddq_f32(hi, lo);
        const float32x2_t t = vadd_f32(vget_low_f32(r), vget_high_f32(r));
        return vget_lane_f32(t, 0) + vget_lane_f32(t, 1);
    }
};

inline int8x16_t s8(uint8x16_t v) {
    return vreinterpretq_s8_u8(v);
}

inline float h2f(uint16_t h) {
    return fp16_to_fp32(h);
}

// Q5 fifth bits for one half of a block: byte j = 0x10 if bit 16*half + j of the little-endian
// qh word is set.
inline uint8x16_t q5_high_bits(const uint8_t qh[4], int half) {
    static const uint8_t kBit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t bytes = vcombine_u8(vdup_n_u8(qh[2 * half]), vdup_n_u8(qh[2 * half + 1]));
    return vandq_u8(vtstq_u8(bytes, vld1q_u8(kBit)), vdupq_n_u8(0x10));
}

// Q4_K / Q5_K 6-bit scales and mins (same packing as scalar unpack_scale_min_k4).
inline void unpack_scales_k4(const uint8_t* s, int sc[8], int m[8]) {
    for (int j = 0; j < 4; ++j) {
        sc[j] = s[j] & 63;
        m[j] = s[j + 4] & 63;
    }
    for (int j = 4; j < 8; ++j) {
        sc[j] = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        m[j] = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// sum_j m[j] * (bsums[2j] + bsums[2j+1]): the min correction of Q4_K / Q5_K.
inline int k4_min_sum(const int m[8], const int16_t* bsums) {
    int summ = 0;
    for (int j = 0; j < 8; ++j) summ += m[j] * (bsums[2 * j] + bsums[2 * j + 1]);
    return summ;
}

}  // namespace

// ---- float types: f32 lanes, four accumulators; products are exact in f32 for F16/BF16 inputs
// (11- or 8-bit mantissas), so only the summation order differs from the double-precision scalar.

float vec_dot_f32(int64_t n, const void* w, const void* act) {
    const auto* a = static_cast<const float*>(w);
    const auto* b = static_cast<const float*>(act);
    float32x4_t acc[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 4; ++k)
            acc[k] = vfmaq_f32(acc[k], vld1q_f32(a + i + 4 * k), vld1q_f32(b + i + 4 * k));
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
    for (; i < n; ++i) sum += a[i] * b[i];
    return sum;
}

float vec_dot_f16(int64_t n, const void* w, const void* act) {
    const auto* a = static_cast<const uint16_t*>(w);
    const auto* b = static_cast<const uint16_t*>(act);
    float32x4_t acc[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 2; ++k) {
            const float16x8_t x = vreinterpretq_f16_u16(vld1q_u16(a + i + 8 * k));
            const float16x8_t y = vreinterpretq_f16_u16(vld1q_u16(b + i + 8 * k));
            acc[2 * k] =
                vfmaq_f32(acc[2 * k], vcvt_f32_f16(vget_low_f16(x)), vcvt_f32_f16(vget_low_f16(y)));
            acc[2 * k + 1] = vfmaq_f32(acc[2 * k + 1], vcvt_high_f32_f16(x), vcvt_high_f32_f16(y));
        }
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
    for (; i < n; ++i) sum += fp16_to_fp32(a[i]) * fp16_to_fp32(b[i]);
    return sum;
}

float vec_dot_bf16(int64_t n, const void* w, const void* act) {
    const auto* a = static_cast<const uint16_t*>(w);
    const auto* b = static_cast<const uint16_t*>(act);
    float32x4_t acc[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 2; ++k) {
            const uint16x8_t x = vld1q_u16(a + i + 8 * k), y = vld1q_u16(b + i + 8 * k);
            // bf16 -> f32 is a 16-bit left shift of the bits.
            const float32x4_t xl = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(x), 16));
            const float32x4_t yl = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(y), 16));
            const float32x4_t xh = vreinterpretq_f32_u32(vshll_high_n_u16(x, 16));
            const float32x4_t yh = vreinterpretq_f32_u32(vshll_high_n_u16(y, 16));
            acc[2 * k] = vfmaq_f32(acc[2 * k], xl, yl);
            acc[2 * k + 1] = vfmaq_f32(acc[2 * k + 1], xh, yh);
        }
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
    for (; i < n; ++i) sum += bf16_to_fp32(a[i]) * bf16_to_fp32(b[i]);
    return sum;
}

// ---- legacy 32-element blocks ------------------------------------------------------------------

float vec_dot_q4_0_q8_0(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q4_0*>(w);
    const auto* y = static_cast<const block_q8_0*>(act);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const int8x16_t eight = vdupq_n_s8(8);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; ++i) {
        const uint8x16_t q = vld1q_u8(x[i].qs);
        const int8x16_t lo = vsubq_s8(s8(vandq_u8(q, m4)), eight);   // elements 0..15
        const int8x16_t hi = vsubq_s8(s8(vshrq_n_u8(q, 4)), eight);  // elements 16..31
        const int sumi = vaddvq_s32(dot32(lo, hi, y[i].qs));
        sum += static_cast<float>(sumi) * h2f(x[i].d) * h2f(y[i].d);
    }
    return sum;
}

float vec_dot_q4_1_q8_1(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q4_1*>(w);
    const auto* y = static_cast<const block_q8_1*>(act);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_1; ++i) {
        const uint8x16_t q = vld1q_u8(x[i].qs);
        const int sumi = vaddvq_s32(dot32(s8(vandq_u8(q, m4)), s8(vshrq_n_u8(q, 4)), y[i].qs));
        sum += h2f(x[i].d) * h2f(y[i].d) * static_cast<float>(sumi) + h2f(x[i].m) * h2f(y[i].s);
    }
    return sum;
}

float vec_dot_q5_0_q8_0(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q5_0*>(w);
    const auto* y = static_cast<const block_q8_0*>(act);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const int8x16_t sixteen = vdupq_n_s8(16);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; ++i) {
        const uint8x16_t q = vld1q_u8(x[i].qs);
        const uint8x16_t l = vorrq_u8(vandq_u8(q, m4), q5_high_bits(x[i].qh, 0));
        const uint8x16_t h = vorrq_u8(vshrq_n_u8(q, 4), q5_high_bits(x[i].qh, 1));
        const int sumi =
            vaddvq_s32(dot32(vsubq_s8(s8(l), sixteen), vsubq_s8(s8(h), sixteen), y[i].qs));
        sum += h2f(x[i].d) * h2f(y[i].d) * static_cast<float>(sumi);
    }
    return sum;
}

float vec_dot_q5_1_q8_1(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q5_1*>(w);
    const auto* y = static_cast<const block_q8_1*>(act);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_1; ++i) {
        const uint8x16_t q = vld1q_u8(x[i].qs);
        const uint8x16_t l = vorrq_u8(vandq_u8(q, m4), q5_high_bits(x[i].qh, 0));
        const uint8x16_t h = vorrq_u8(vshrq_n_u8(q, 4), q5_high_bits(x[i].qh, 1));
        const int sumi = vaddvq_s32(dot32(s8(l), s8(h), y[i].qs));
        sum += h2f(x[i].d) * h2f(y[i].d) * static_cast<float>(sumi) + h2f(x[i].m) * h2f(y[i].s);
    }
    return sum;
}

float vec_dot_q8_0_q8_0(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q8_0*>(w);
    const auto* y = static_cast<const block_q8_0*>(act);
    Q8Lanes acc;
    for (int64_t i = 0; i < n / QK8_0; ++i) acc.add(x[i].qs, y[i].qs, h2f(x[i].d) * h2f(y[i].d));
    return acc.sum();
}

// 4 weight rows (w, w + stride, ...) times one activation row: out[0..3], each bit-identical to
// the single-row dot (same per-row operations); the activation block is loaded once for all four.
void vec_dot4_q4_0_q8_0(int64_t n, const void* w, size_t stride, const void* act, float* out) {
    const block_q4_0* x[4];
    for (int r = 0; r < 4; ++r)
        x[r] = reinterpret_cast<const block_q4_0*>(static_cast<const uint8_t*>(w) + r * stride);
    const auto* y = static_cast<const block_q8_0*>(act);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const int8x16_t eight = vdupq_n_s8(8);
    float sum[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int64_t i = 0; i < n / QK8_0; ++i) {
        const int8x16_t a0 = vld1q_s8(y[i].qs), a1 = vld1q_s8(y[i].qs + 16);
        const float dy = h2f(y[i].d);
        for (int r = 0; r < 4; ++r) {
            const uint8x16_t q = vld1q_u8(x[r][i].qs);
            const int8x16_t lo = vsubq_s8(s8(vandq_u8(q, m4)), eight);
            const int8x16_t hi = vsubq_s8(s8(vshrq_n_u8(q, 4)), eight);
            const int sumi = vaddvq_s32(dot16(dot16(vdupq_n_s32(0), lo, a0), hi, a1));
            sum[r] += static_cast<float>(sumi) * h2f(x[r][i].d) * dy;
        }
    }
    for (int r = 0; r < 4; ++r) out[r] = sum[r];
}

void vec_dot4_q8_0_q8_0(int64_t n, const void* w, size_t stride, const void* act, float* out) {
    const block_q8_0* x[4];
    for (int r = 0; r < 4; ++r)
        x[r] = reinterpret_cast<const block_q8_0*>(static_cast<const uint8_t*>(w) + r * stride);
    const auto* y = static_cast<const block_q8_0*>(act);
    Q8Lanes acc[4];
    for (int64_t i = 0; i < n / QK8_0; ++i) {
        const int8x16_t a0 = vld1q_s8(y[i].qs), a1 = vld1q_s8(y[i].qs + 16);
        const float dy = h2f(y[i].d);
        for (int r = 0; r < 4; ++r)
            acc[r].add(vld1q_s8(x[r][i].qs), vld1q_s8(x[r][i].qs + 16), a0, a1,
                       h2f(x[r][i].d) * dy);
    }
    for (int r = 0; r < 4; ++r) out[r] = acc[r].sum();
}

// ---- K-quants (256-element super-blocks). Each sub-block's int32 partial sums are scaled by its
// integer scale with vmlaq_n_s32 and reduced across lanes once per super-block (exact in int32:
// see scalar_q_k.cpp for the bound).

// Q2_K: element 128g + 32s + l is bits 2s..2s+1 of qs[32g + l]; sub-block j = 16 elements with
// scale scales[j] & 15 and min scales[j] >> 4.
float vec_dot_q2_K_q8_K(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q2_K*>(w);
    const auto* y = static_cast<const block_q8_K*>(act);
    const uint8x16_t m3 = vdupq_n_u8(3);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const uint8_t* sc = x[i].scales;
        int summ = 0;
        for (int j = 0; j < 16; ++j) summ += (sc[j] >> 4) * y[i].bsums[j];
        int32x4_t acc = vdupq_n_s32(0);
        for (int g = 0; g < 2; ++g) {
            uint8x16_t q0 = vld1q_u8(x[i].qs + 32 * g), q1 = vld1q_u8(x[i].qs + 32 * g + 16);
            for (int s = 0; s < 4; ++s) {
                const int8_t* a = y[i].qs + 128 * g + 32 * s;
                const int j = 8 * g + 2 * s;
                acc = vmlaq_n_s32(acc, dot16(vdupq_n_s32(0), s8(vandq_u8(q0, m3)), vld1q_s8(a)),
                                  sc[j] & 0xF);
                acc =
                    vmlaq_n_s32(acc, dot16(vdupq_n_s32(0), s8(vandq_u8(q1, m3)), vld1q_s8(a + 16)),
                                sc[j + 1] & 0xF);
                q0 = vshrq_n_u8(q0, 2);
                q1 = vshrq_n_u8(q1, 2);
            }
        }
        const int sumi = vaddvq_s32(acc);
        const float dall = y[i].d * h2f(x[i].d);
        const float dmin = y[i].d * h2f(x[i].dmin);
        sum += dall * static_cast<float>(sumi) - dmin * static_cast<float>(summ);
    }
    return sum;
}

// Q3_K: Q2_K's low bits minus 4 where the hmask bit (element e: hmask[e % 32], bit e / 32) is
// clear; 16 signed 6-bit scales (+32 offset) packed in 12 bytes.
float vec_dot_q3_K_q8_K(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q3_K*>(w);
    const auto* y = static_cast<const block_q8_K*>(act);
    const uint8x16_t m3 = vdupq_n_u8(3), four = vdupq_n_u8(4);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const uint8_t* ps = x[i].scales;
        int sc[16];
        for (int j = 0; j < 16; ++j) {
            const int low = j < 8 ? (ps[j] & 0xF) : (ps[j - 8] >> 4);
            const int high = (ps[8 + j % 4] >> (2 * (j / 4))) & 3;
            sc[j] = (low | (high << 4)) - 32;
        }
        const uint8x16_t hm0 = vld1q_u8(x[i].hmask), hm1 = vld1q_u8(x[i].hmask + 16);
        int32x4_t acc = vdupq_n_s32(0);
        for (int g = 0; g < 2; ++g) {
            uint8x16_t q0 = vld1q_u8(x[i].qs + 32 * g), q1 = vld1q_u8(x[i].qs + 32 * g + 16);
            for (int s = 0; s < 4; ++s) {
                const uint8x16_t bit = vdupq_n_u8(static_cast<uint8_t>(1u << (4 * g + s)));
                // 4 where the high bit is clear, else 0
                const uint8x16_t sub0 = vbicq_u8(four, vtstq_u8(hm0, bit));
                const uint8x16_t sub1 = vbicq_u8(four, vtstq_u8(hm1, bit));
                const int8x16_t v0 = vsubq_s8(s8(vandq_u8(q0, m3)), s8(sub0));
                const int8x16_t v1 = vsubq_s8(s8(vandq_u8(q1, m3)), s8(sub1));
                const int8_t* a = y[i].qs + 128 * g + 32 * s;
                const int j = 8 * g + 2 * s;
                acc = vmlaq_n_s32(acc, dot16(vdupq_n_s32(0), v0, vld1q_s8(a)), sc[j]);
                acc = vmlaq_n_s32(acc, dot16(vdupq_n_s32(0), v1, vld1q_s8(a + 16)), sc[j + 1]);
                q0 = vshrq_n_u8(q0, 2);
                q1 = vshrq_n_u8(q1, 2);
            }
        }
        sum += h2f(x[i].d) * y[i].d * static_cast<float>(vaddvq_s32(acc));
    }
    return sum;
}

// Q4_K: per 64-element group g, qs[32g + l] holds element 64g + l (low nibble) and 64g + 32 + l
// (high nibble); 8 sub-blocks of 32 with 6-bit scales and mins.
float vec_dot_q4_K_q8_K(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q4_K*>(w);
    const auto* y = static_cast<const block_q8_K*>(act);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        int sc[8], m[8];
        unpack_scales_k4(x[i].scales, sc, m);
        const int summ = k4_min_sum(m, y[i].bsums);
        int32x4_t acc = vdupq_n_s32(0);
        for (int g = 0; g < 4; ++g) {
            const uint8x16_t q0 = vld1q_u8(x[i].qs + 32 * g), q1 = vld1q_u8(x[i].qs + 32 * g + 16);
            const int8_t* a = y[i].qs + 64 * g;
            acc = vmlaq_n_s32(acc, dot32(s8(vandq_u8(q0, m4)), s8(vandq_u8(q1, m4)), a), sc[2 * g]);
            acc = vmlaq_n_s32(acc, dot32(s8(vshrq_n_u8(q0, 4)), s8(vshrq_n_u8(q1, 4)), a + 32),
                              sc[2 * g + 1]);
        }
        const int sumi = vaddvq_s32(acc);
        sum += h2f(x[i].d) * y[i].d * static_cast<float>(sumi) -
               h2f(x[i].dmin) * y[i].d * static_cast<float>(summ);
    }
    return sum;
}

// Q5_K: Q4_K plus a fifth bit: element 64g + l is bit 2g of qh[l], 64g + 32 + l bit 2g + 1.
float vec_dot_q5_K_q8_K(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q5_K*>(w);
    const auto* y = static_cast<const block_q8_K*>(act);
    const uint8x16_t m4 = vdupq_n_u8(0x0F), b4 = vdupq_n_u8(0x10);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        int sc[8], m[8];
        unpack_scales_k4(x[i].scales, sc, m);
        const int summ = k4_min_sum(m, y[i].bsums);
        uint8x16_t h0 = vld1q_u8(x[i].qh), h1 = vld1q_u8(x[i].qh + 16);  // shifted right 2g
        int32x4_t acc = vdupq_n_s32(0);
        for (int g = 0; g < 4; ++g) {
            const uint8x16_t q0 = vld1q_u8(x[i].qs + 32 * g), q1 = vld1q_u8(x[i].qs + 32 * g + 16);
            const uint8x16_t l0 = vorrq_u8(vandq_u8(q0, m4), vandq_u8(vshlq_n_u8(h0, 4), b4));
            const uint8x16_t l1 = vorrq_u8(vandq_u8(q1, m4), vandq_u8(vshlq_n_u8(h1, 4), b4));
            const uint8x16_t u0 = vorrq_u8(vshrq_n_u8(q0, 4), vandq_u8(vshlq_n_u8(h0, 3), b4));
            const uint8x16_t u1 = vorrq_u8(vshrq_n_u8(q1, 4), vandq_u8(vshlq_n_u8(h1, 3), b4));
            const int8_t* a = y[i].qs + 64 * g;
            acc = vmlaq_n_s32(acc, dot32(s8(l0), s8(l1), a), sc[2 * g]);
            acc = vmlaq_n_s32(acc, dot32(s8(u0), s8(u1), a + 32), sc[2 * g + 1]);
            h0 = vshrq_n_u8(h0, 2);
            h1 = vshrq_n_u8(h1, 2);
        }
        const int sumi = vaddvq_s32(acc);
        sum += h2f(x[i].d) * y[i].d * static_cast<float>(sumi) -
               h2f(x[i].dmin) * y[i].d * static_cast<float>(summ);
    }
    return sum;
}

// Q6_K: per 128-element group g, element 128g + 32s + l takes a nibble of ql[64g + 32(s%2) + l]
// (low for s < 2) and bits 2s..2s+1 of qh[32g + l], minus 32; 16 sub-blocks of 16, int8 scales.
float vec_dot_q6_K_q8_K(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q6_K*>(w);
    const auto* y = static_cast<const block_q8_K*>(act);
    const uint8x16_t m4 = vdupq_n_u8(0x0F), m30 = vdupq_n_u8(0x30);
    const int8x16_t k32 = vdupq_n_s8(32);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const int8_t* sc = x[i].scales;
        int32x4_t acc = vdupq_n_s32(0);
        for (int g = 0; g < 2; ++g)
            for (int h = 0; h < 2; ++h) {  // l in [16h, 16h + 16)
                const uint8x16_t L0 = vld1q_u8(x[i].ql + 64 * g + 16 * h);
                const uint8x16_t L1 = vld1q_u8(x[i].ql + 64 * g + 32 + 16 * h);
                const uint8x16_t H = vld1q_u8(x[i].qh + 32 * g + 16 * h);
                const uint8x16_t q[4] = {
                    vorrq_u8(vandq_u8(L0, m4), vandq_u8(vshlq_n_u8(H, 4), m30)),
                    vorrq_u8(vandq_u8(L1, m4), vandq_u8(vshlq_n_u8(H, 2), m30)),
                    vorrq_u8(vshrq_n_u8(L0, 4), vandq_u8(H, m30)),
                    vorrq_u8(vshrq_n_u8(L1, 4), vandq_u8(vshrq_n_u8(H, 2), m30)),
                };
                for (int s = 0; s < 4; ++s) {
                    const int8_t* a = y[i].qs + 128 * g + 32 * s + 16 * h;
                    const int32x4_t d = dot16(vdupq_n_s32(0), vsubq_s8(s8(q[s]), k32), vld1q_s8(a));
                    acc = vmlaq_n_s32(acc, d, sc[8 * g + 2 * s + h]);
                }
            }
        sum += h2f(x[i].d) * y[i].d * static_cast<float>(vaddvq_s32(acc));
    }
    return sum;
}

}  // namespace duan::kernels::arm::DUAN_ARM_VARIANT
