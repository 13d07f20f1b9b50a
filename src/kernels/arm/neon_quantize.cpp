// NEON activation quantizers Q8_0, Q8_1 (32-element blocks) and Q8_K (256), byte-identical to the
// scalar ones in scalar_q_legacy.cpp / scalar_q_k.cpp:
//  - Q8_0/Q8_1 round x * (1/d) half away from zero (roundf) -> vcvtaq_s32_f32;
//  - Q8_K rounds iscale * x to nearest even (nearest_int) -> vcvtnq_s32_f32, then caps at 127.
// The scale itself is computed from the same float values in the same order as the scalar code.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <arm_neon.h>

#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "kernels/arm/neon_kernels.h"
#include "kernels/blocks.h"

namespace duan::kernels::arm {
namespace {

// Quantizes 32 floats with d = amax / 127 (as the scalar quantize_block_q8); returns sum(qs).
inline int quantize_block_q8(const float* x, int8_t* qs, float* d_out) {
    float32x4_t v[8];
    float32x4_t amax = vdupq_n_f32(0.0f);
    for (int k = 0; k < 8; ++k) {
        v[k] = vld1q_f32(x + 4 * k);
        amax = vmaxq_f32(amax, vabsq_f32(v[k]));
    }
    const float d = vmaxvq_f32(amax) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int16x8_t q16[4];
    for (int k = 0; k < 4; ++k) {
        const int32x4_t a = vcvtaq_s32_f32(vmulq_n_f32(v[2 * k], id));
        const int32x4_t b = vcvtaq_s32_f32(vmulq_n_f32(v[2 * k + 1], id));
        q16[k] = vcombine_s16(vmovn_s32(a), vmovn_s32(b));
    }
    const int8x16_t q0 = vcombine_s8(vmovn_s16(q16[0]), vmovn_s16(q16[1]));
    const int8x16_t q1 = vcombine_s8(vmovn_s16(q16[2]), vmovn_s16(q16[3]));
    vst1q_s8(qs, q0);
    vst1q_s8(qs + 16, q1);
    *d_out = d;
    return vaddlvq_s8(q0) + vaddlvq_s8(q1);
}

}  // namespace

void quantize_q8_0(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<block_q8_0*>(dst);
    for (int64_t i = 0; i < n / QK8_0; ++i, src += QK8_0) {
        float d;
        quantize_block_q8(src, b[i].qs, &d);
        b[i].d = fp32_to_fp16(d);
    }
}

void quantize_q8_1(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<block_q8_1*>(dst);
    for (int64_t i = 0; i < n / QK8_1; ++i, src += QK8_1) {
        float d;
        const int sum = quantize_block_q8(src, b[i].qs, &d);
        b[i].d = fp32_to_fp16(d);
        b[i].s = fp32_to_fp16(static_cast<float>(sum) * d);
    }
}

// Q8_K: d = max / -127 where max is the first element of largest magnitude (the scalar scan keeps
// the first on ties, so a tie between +a and -a is settled by a scalar scan).
void quantize_q8_K(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<block_q8_K*>(dst);
    for (int64_t i = 0; i < n / QK_K; ++i, src += QK_K) {
        float32x4_t vmax = vld1q_f32(src), vmin = vmax;
        for (int k = 4; k < QK_K; k += 4) {
            const float32x4_t v = vld1q_f32(src + k);
            vmax = vmaxq_f32(vmax, v);
            vmin = vminq_f32(vmin, v);
        }
        const float hi = vmaxvq_f32(vmax), lo = vminvq_f32(vmin);
        float max;
        if (hi > -lo) {
            max = hi;
        } else if (-lo > hi) {
            max = lo;
        } else {  // |hi| == |lo| (or NaN): first of largest magnitude, exactly as the scalar scan
            float amax = 0.0f;
            max = 0.0f;
            for (int j = 0; j < QK_K; ++j) {
                const float ax = std::fabs(src[j]);
                if (ax > amax) {
                    amax = ax;
                    max = src[j];
                }
            }
        }
        if (max == 0.0f) {
            std::memset(&b[i], 0, sizeof(block_q8_K));
            continue;
        }
        const float iscale = -127.0f / max;
        const int32x4_t cap = vdupq_n_s32(127);
        for (int j = 0; j < QK_K; j += 16) {
            int16x8_t h[2];
            for (int k = 0; k < 2; ++k) {
                const int32x4_t a =
                    vminq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(src + j + 8 * k), iscale)), cap);
                const int32x4_t c = vminq_s32(
                    vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(src + j + 8 * k + 4), iscale)), cap);
                h[k] = vcombine_s16(vmovn_s32(a), vmovn_s32(c));
            }
            const int8x16_t q = vcombine_s8(vmovn_s16(h[0]), vmovn_s16(h[1]));
            vst1q_s8(b[i].qs + j, q);
            b[i].bsums[j / 16] = static_cast<int16_t>(vaddlvq_s8(q));
        }
        b[i].d = 1.0f / iscale;
    }
}

}  // namespace duan::kernels::arm
