// i8mm kernels (-march=armv8.6-a+dotprod+i8mm+fp16 by file name): two weight rows times two
// activation rows per pass with vmmlaq_s32, which multiplies a 2x8 int8 matrix by an 8x2 one into
// 2x2 int32 sums. Per 32-element block: four vmmlaq_s32 give the four block sums exactly; the
// scales are then applied lane-wise in the scalar reference's operand order, so each output is
// bit-identical to the single-row vec_dot (Q4_0; Q8_0 sums in lanes of 4 products and uses
// vdotq_s32, see below). (For one activation row i8mm has nothing to add over
// vdotq_s32, so the table's vec_dot at the i8mm level is the dotprod build.)
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <arm_neon.h>

#include <cstddef>
#include <cstdint>

#include "core/fp16.h"
#include "kernels/arm/neon_kernels.h"
#include "kernels/blocks.h"

namespace duan::kernels::arm::i8mm {
namespace {

// vmmlaq_s32(acc, A, B) with A = [A row 0 (8 int8) | A row 1] and B = [B row 0 | B row 1] adds
// the 2x2 products {A0·B0, A0·B1, A1·B0, A1·B1}. Here A = the two activation rows and B = the two
// weight rows, each 32-element block given as two 16-byte halves; the result lanes are
// {a0·w0, a0·w1, a1·w0, a1·w1} = out[2 * m + r].
inline int32x4_t mmla_block(int8x16_t a0l, int8x16_t a0h, int8x16_t a1l, int8x16_t a1h,
                            int8x16_t w0l, int8x16_t w0h, int8x16_t w1l, int8x16_t w1h) {
    auto pair = [](int8x16_t x, int8x16_t y, bool upper) {  // 8 bytes of x, then 8 of y
        const int64x2_t a = vreinterpretq_s64_s8(x), b = vreinterpretq_s64_s8(y);
        return vreinterpretq_s8_s64(upper ? vzip2q_s64(a, b) : vzip1q_s64(a, b));
    };
    int32x4_t acc = vdupq_n_s32(0);
    acc = vmmlaq_s32(acc, pair(a0l, a1l, false), pair(w0l, w1l, false));  // elements 0..7
    acc = vmmlaq_s32(acc, pair(a0l, a1l, true), pair(w0l, w1l, true));    // 8..15
    acc = vmmlaq_s32(acc, pair(a0h, a1h, false), pair(w0h, w1h, false));  // 16..23
    acc = vmmlaq_s32(acc, pair(a0h, a1h, true), pair(w0h, w1h, true));    // 24..31
    return acc;
}

inline float32x4_t lanes(float a, float b, float c, float d) {
    const float v[4] = {a, b, c, d};
    return vld1q_f32(v);
}

template <class Block>
const Block* row_at(const void* base, size_t stride, int r) {
    return reinterpret_cast<const Block*>(static_cast<const uint8_t*>(base) + r * stride);
}

}  // namespace

void vec_dot_2x2_q4_0_q8_0(int64_t n, const void* w, size_t w_stride, const void* act,
                           size_t act_stride, float* out) {
    const auto* x0 = row_at<block_q4_0>(w, w_stride, 0);
    const auto* x1 = row_at<block_q4_0>(w, w_stride, 1);
    const auto* y0 = row_at<block_q8_0>(act, act_stride, 0);
    const auto* y1 = row_at<block_q8_0>(act, act_stride, 1);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const int8x16_t eight = vdupq_n_s8(8);
    auto lo = [&](uint8x16_t q) { return vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, m4)), eight); };
    auto hi = [&](uint8x16_t q) { return vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), eight); };
    float32x4_t sum = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < n / QK8_0; ++i) {
        const uint8x16_t q0 = vld1q_u8(x0[i].qs), q1 = vld1q_u8(x1[i].qs);
        const int32x4_t sumi =
            mmla_block(vld1q_s8(y0[i].qs), vld1q_s8(y0[i].qs + 16), vld1q_s8(y1[i].qs),
                       vld1q_s8(y1[i].qs + 16), lo(q0), hi(q0), lo(q1), hi(q1));
        // scalar: sum += float(sumi) * d_w * d_a, lane-wise in the same order
        const float dw0 = fp16_to_fp32(x0[i].d), dw1 = fp16_to_fp32(x1[i].d);
        const float da0 = fp16_to_fp32(y0[i].d), da1 = fp16_to_fp32(y1[i].d);
        sum = vaddq_f32(sum, vmulq_f32(vmulq_f32(vcvtq_f32_s32(sumi), lanes(dw0, dw1, dw0, dw1)),
                                       lanes(da0, da0, da1, da1)));
    }
    vst1q_f32(out, sum);
}

// Q8_0 is summed by the reference in lanes of 4 products (see neon_dots.inl's Q8Lanes), which a
// vmmlaq_s32 sum of 8 products cannot give; so the 2x2 tile uses vdotq_s32 (whose lanes are those
// groups of 4) and shares each block's loads between the four outputs.
void vec_dot_2x2_q8_0_q8_0(int64_t n, const void* w, size_t w_stride, const void* act,
                           size_t act_stride, float* out) {
    const block_q8_0* x[2] = {row_at<block_q8_0>(w, w_stride, 0),
                              row_at<block_q8_0>(w, w_stride, 1)};
    const block_q8_0* y[2] = {row_at<block_q8_0>(act, act_stride, 0),
                              row_at<block_q8_0>(act, act_stride, 1)};
    float32x4_t lo[4], hi[4];  // [2 * m + r]: lanes 0..3 and 4..7 of the reference's 8
    for (int k = 0; k < 4; ++k) lo[k] = hi[k] = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < n / QK8_0; ++i) {
        const int8x16_t wl[2] = {vld1q_s8(x[0][i].qs), vld1q_s8(x[1][i].qs)};
        const int8x16_t wh[2] = {vld1q_s8(x[0][i].qs + 16), vld1q_s8(x[1][i].qs + 16)};
        const float dw[2] = {fp16_to_fp32(x[0][i].d), fp16_to_fp32(x[1][i].d)};
        for (int m = 0; m < 2; ++m) {
            const int8x16_t al = vld1q_s8(y[m][i].qs), ah = vld1q_s8(y[m][i].qs + 16);
            const float da = fp16_to_fp32(y[m][i].d);
            for (int r = 0; r < 2; ++r) {
                const float32x4_t d = vdupq_n_f32(dw[r] * da);
                const int k = 2 * m + r;
                lo[k] = vfmaq_f32(lo[k], d, vcvtq_f32_s32(vdotq_s32(vdupq_n_s32(0), wl[r], al)));
                hi[k] = vfmaq_f32(hi[k], d, vcvtq_f32_s32(vdotq_s32(vdupq_n_s32(0), wh[r], ah)));
            }
        }
    }
    // The reference's horizontal sum: lanes 0..3 + 4..7, then [0]+[2], [1]+[3], then the two.
    for (int k = 0; k < 4; ++k) {
        const float32x4_t s = vaddq_f32(hi[k], lo[k]);
        const float32x2_t t = vadd_f32(vget_low_f32(s), vget_high_f32(s));
        out[k] = vget_lane_f32(t, 0) + vget_lane_f32(t, 1);
    }
}

}  // namespace duan::kernels::arm::i8mm
