// Weight quantizers for Q4_0, Q4_1, Q5_0, Q5_1 (Q8_0 is in scalar_q_legacy.cpp). Without an
// imatrix these are byte-identical to the reference's quantize_row_*_ref (the round-to-nearest
// block quantizers every *_0 / *_1 model file was made with); with one, to its importance-weighted
// quantize_q*_* path (which weights each column by imatrix * sqrt(sigma^2 + x^2)).
// Bit-exact float arithmetic: forbid fused multiply-add contraction in this file. g++ contracts
// a*b+c by default wherever the target has FMA (e.g. every aarch64), which rounds differently from
// the reference quantizer and breaks byte-identical output. Placed before the includes so inline
// helpers from headers are compiled (and inlined) with the same setting.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <cfloat>
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "kernels/blocks.h"
#include "kernels/kernel_table.h"
#include "kernels/quantize_ref.h"

namespace duan::kernels::scalar {
namespace {

// The signed value of largest magnitude in a block (first one wins on ties).
float signed_absmax(const float* x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; ++j) {
        if (amax < std::fabs(x[j])) {
            amax = std::fabs(x[j]);
            max = x[j];
        }
    }
    return max;
}

void min_max(const float* x, int n, float* mn, float* mx) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < n; ++j) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

// Packs 32 5-bit quants: low nibbles into qs (element j | element j+16 << 4), fifth bits into qh.
void pack_q5(const uint8_t* L, uint8_t* qs, uint8_t* qh_bytes) {
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
        qs[j] = static_cast<uint8_t>((L[j] & 0x0F) | ((L[j + 16] & 0x0F) << 4));
        qh |= static_cast<uint32_t>((L[j] & 0x10u) >> 4) << j;
        qh |= static_cast<uint32_t>((L[j + 16] & 0x10u) >> 4) << (j + 16);
    }
    std::memcpy(qh_bytes, &qh, 4);
}

// Per-column weights of the importance-weighted path: imatrix * sqrt(sigma2 + x^2), where sigma2
// is the mean square of the whole row.
float row_sigma2(const float* x, int64_t n) {
    float sum_x2 = 0.0f;
    for (int64_t j = 0; j < n; ++j) sum_x2 += x[j] * x[j];
    return sum_x2 / static_cast<float>(n);
}

void block_weights(const float* xb, const float* qw, float sigma2, float* weight) {
    for (int j = 0; j < 32; ++j) weight[j] = qw[j] * std::sqrt(sigma2 + xb[j] * xb[j]);
}

}  // namespace

// ---- Q4_0: x = d * (q - 8), d = max / -8 --------------------------------------------------------

void quantize_q4_0_w(const float* src, void* dst, int64_t n, const float* imatrix) {
    auto* y = static_cast<block_q4_0*>(dst);
    const int64_t nb = n / QK4_0;
    if (imatrix) {
        const float sigma2 = row_sigma2(src, n);
        float weight[QK4_0];
        int8_t L[QK4_0];
        for (int64_t i = 0; i < nb; ++i) {
            const float* xb = src + QK4_0 * i;
            block_weights(xb, imatrix + QK4_0 * i, sigma2, weight);
            const float d = qref::make_qx_quants(QK4_0, 8, xb, L, 1, weight);
            y[i].d = fp32_to_fp16(d);
            for (int j = 0; j < 16; ++j) y[i].qs[j] = static_cast<uint8_t>(L[j] | (L[j + 16] << 4));
        }
        return;
    }
    for (int64_t i = 0; i < nb; ++i) {
        const float* x = src + QK4_0 * i;
        const float d = signed_absmax(x, QK4_0) / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; ++j) {
            // Truncation of (x*id + 8.5) is rounding to nearest of x*id + 8 (which is >= 0).
            const int q0 = static_cast<int8_t>(x[j] * id + 8.5f);
            const int q1 = static_cast<int8_t>(x[j + QK4_0 / 2] * id + 8.5f);
            y[i].qs[j] = static_cast<uint8_t>((q0 < 15 ? q0 : 15) | ((q1 < 15 ? q1 : 15) << 4));
        }
    }
}

// ---- Q4_1: x = d * q + m, m = min, d = (max - min) / 15 ---------------------------------------

void quantize_q4_1_w(const float* src, void* dst, int64_t n, const float* imatrix) {
    auto* y = static_cast<block_q4_1*>(dst);
    const int64_t nb = n / QK4_1;
    if (imatrix) {
        const float sigma2 = row_sigma2(src, n);
        float weight[QK4_1];
        uint8_t L[QK4_1], Laux[QK4_1];
        for (int64_t i = 0; i < nb; ++i) {
            const float* xb = src + QK4_1 * i;
            block_weights(xb, imatrix + QK4_1 * i, sigma2, weight);
            float min;
            const float d = qref::make_qkx3_quants(QK4_1, 15, xb, weight, L, &min, Laux, -0.9f,
                                                   0.05f, 36, false);
            y[i].d = fp32_to_fp16(d);
            y[i].m = fp32_to_fp16(-min);
            for (int j = 0; j < 16; ++j) y[i].qs[j] = static_cast<uint8_t>(L[j] | (L[j + 16] << 4));
        }
        return;
    }
    for (int64_t i = 0; i < nb; ++i) {
        const float* x = src + QK4_1 * i;
        float min, max;
        min_max(x, QK4_1, &min, &max);
        const float d = (max - min) / 15;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        y[i].m = fp32_to_fp16(min);
        for (int j = 0; j < QK4_1 / 2; ++j) {
            const int q0 = static_cast<int8_t>((x[j] - min) * id + 0.5f);
            const int q1 = static_cast<int8_t>((x[j + QK4_1 / 2] - min) * id + 0.5f);
            y[i].qs[j] = static_cast<uint8_t>((q0 < 15 ? q0 : 15) | ((q1 < 15 ? q1 : 15) << 4));
        }
    }
}

// ---- Q5_0: x = d * (q - 16), d = max / -16 ------------------------------------------------------

void quantize_q5_0_w(const float* src, void* dst, int64_t n, const float* imatrix) {
    auto* y = static_cast<block_q5_0*>(dst);
    const int64_t nb = n / QK5_0;
    if (imatrix) {
        const float sigma2 = row_sigma2(src, n);
        float weight[QK5_0];
        int8_t L[QK5_0];
        for (int64_t i = 0; i < nb; ++i) {
            const float* xb = src + QK5_0 * i;
            block_weights(xb, imatrix + QK5_0 * i, sigma2, weight);
            const float d = qref::make_qx_quants(QK5_0, 16, xb, L, 1, weight);
            y[i].d = fp32_to_fp16(d);
            uint8_t U[QK5_0];
            for (int j = 0; j < QK5_0; ++j) U[j] = static_cast<uint8_t>(L[j]);
            pack_q5(U, y[i].qs, y[i].qh);
        }
        return;
    }
    for (int64_t i = 0; i < nb; ++i) {
        const float* x = src + QK5_0 * i;
        const float d = signed_absmax(x, QK5_0) / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        uint8_t L[QK5_0];
        for (int j = 0; j < QK5_0; ++j) {
            const int q = static_cast<int8_t>(x[j] * id + 16.5f);
            L[j] = static_cast<uint8_t>(q < 31 ? q : 31);
        }
        pack_q5(L, y[i].qs, y[i].qh);
    }
}

// ---- Q5_1: x = d * q + m, d = (max - min) / 31
// ---------------------------------------------------

void quantize_q5_1_w(const float* src, void* dst, int64_t n, const float* imatrix) {
    auto* y = static_cast<block_q5_1*>(dst);
    const int64_t nb = n / QK5_1;
    if (imatrix) {
        const float sigma2 = row_sigma2(src, n);
        float weight[QK5_1];
        uint8_t L[QK5_1], Laux[QK5_1];
        for (int64_t i = 0; i < nb; ++i) {
            const float* xb = src + QK5_1 * i;
            block_weights(xb, imatrix + QK5_1 * i, sigma2, weight);
            float min;
            const float d = qref::make_qkx3_quants(QK5_1, 31, xb, weight, L, &min, Laux, -0.9f,
                                                   0.05f, 36, false);
            y[i].d = fp32_to_fp16(d);
            y[i].m = fp32_to_fp16(-min);
            pack_q5(L, y[i].qs, y[i].qh);
        }
        return;
    }
    for (int64_t i = 0; i < nb; ++i) {
        const float* x = src + QK5_1 * i;
        float min, max;
        min_max(x, QK5_1, &min, &max);
        const float d = (max - min) / 31;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        y[i].m = fp32_to_fp16(min);
        uint8_t L[QK5_1];
        for (int j = 0; j < QK5_1; ++j) L[j] = static_cast<uint8_t>((x[j] - min) * id + 0.5f);
        pack_q5(L, y[i].qs, y[i].qh);
    }
}

}  // namespace duan::kernels::scalar
