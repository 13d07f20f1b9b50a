// Weight quantizers for the K-quants Q2_K..Q6_K. Without an imatrix each is byte-identical to the
// reference's quantize_row_q*_K_ref (what its quantize tool uses when no importance matrix is
// given); with one, to its quantize_row_q*_K_impl (sub-block scales found by make_qkx3/make_qx with
// weights imatrix * sqrt(sigma^2 + x^2), super-block scales by make_qp_quants).
// Bit-exact float arithmetic: forbid fused multiply-add contraction in this file. g++ contracts
// a*b+c by default wherever the target has FMA (e.g. every aarch64), which rounds differently from
// the reference quantizer and breaks byte-identical output. Placed before the includes so inline
// helpers from headers are compiled (and inlined) with the same setting.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "kernels/blocks.h"
#include "kernels/kernel_table.h"
#include "kernels/quantize_ref.h"

namespace duan::kernels::scalar {
namespace {

using qref::kGroupMaxEps;
using qref::make_q3_quants;
using qref::make_qkx2_quants;
using qref::make_qkx3_quants;
using qref::make_qp_quants;
using qref::make_qx_quants;

inline int clamp_int(int v, int lo, int hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

// Q2_K / Q3_K low-bit packing: byte l of 32-byte group g holds elements 128g + l + 32s at bits 2s.
void pack_2bit(const uint8_t* L, uint8_t* qs) {
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; ++l)
            qs[j / 4 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) |
                                                 (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

// Q4_K / Q5_K scale packing (see unpack_scale_min_k4 in scalar_q_k.cpp).
void pack_scale_min_k4(uint8_t* scales, int j, uint8_t ls, uint8_t lm) {
    if (j < 4) {
        scales[j] = ls;
        scales[j + 4] = lm;
    } else {
        scales[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
        scales[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
        scales[j - 0] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
}

void get_scale_min_k4(int j, const uint8_t* q, int* d, int* m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
    }
}

// Q3_K scale packing: 6-bit l (already offset by 32) for sub-block j.
void pack_q3_scale(uint8_t* scales, int j, int l) {
    if (j < 8)
        scales[j] = static_cast<uint8_t>(l & 0xF);
    else
        scales[j - 8] |= static_cast<uint8_t>((l & 0xF) << 4);
    l >>= 4;
    scales[j % 4 + 8] |= static_cast<uint8_t>(l << (2 * (j / 4)));
}

int unpack_q3_scale(const uint8_t* scales, int j) {
    const int low = j < 8 ? (scales[j] & 0xF) : (scales[j - 8] >> 4);
    return (low | (((scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
}

// Re-derives the Q4_K / Q5_K quants from the final (rounded) scales and mins.
void requantize_k4(const float* x, const uint8_t* scales, uint16_t d16, uint16_t dmin16, int nmax,
                   uint8_t* L) {
    for (int j = 0; j < QK_K / 32; ++j) {
        int sc, m;
        get_scale_min_k4(j, scales, &sc, &m);
        const float d = fp16_to_fp32(d16) * static_cast<float>(sc);
        if (d == 0.0f) continue;
        const float dm = fp16_to_fp32(dmin16) * static_cast<float>(m);
        for (int ii = 0; ii < 32; ++ii)
            L[32 * j + ii] =
                static_cast<uint8_t>(clamp_int(nearest_int((x[32 * j + ii] + dm) / d), 0, nmax));
    }
}

void pack_q4_K_quants(const uint8_t* L, uint8_t* q) {
    for (int j = 0; j < QK_K; j += 64, q += 32)
        for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
}

void pack_q5_K_quants(const uint8_t* L, uint8_t* ql, uint8_t* qh) {
    std::memset(qh, 0, QK_K / 8);
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < QK_K; n += 64, ql += 32) {
        for (int j = 0; j < 32; ++j) {
            int l1 = L[n + j];
            if (l1 > 15) {
                l1 -= 16;
                qh[j] |= m1;
            }
            int l2 = L[n + j + 32];
            if (l2 > 15) {
                l2 -= 16;
                qh[j] |= m2;
            }
            ql[j] = static_cast<uint8_t>(l1 | (l2 << 4));
        }
        m1 = static_cast<uint8_t>(m1 << 2);
        m2 = static_cast<uint8_t>(m2 << 2);
    }
}

// Q3_K: requantize with the final scales, then split off the third bit into hmask.
void finish_q3_K(const float* x, block_q3_K& y, int8_t* L) {
    for (int j = 0; j < QK_K / 16; ++j) {
        const float d = fp16_to_fp32(y.d) * static_cast<float>(unpack_q3_scale(y.scales, j));
        if (d == 0.0f) continue;
        for (int ii = 0; ii < 16; ++ii)
            L[16 * j + ii] =
                static_cast<int8_t>(clamp_int(nearest_int(x[16 * j + ii] / d), -4, 3) + 4);
    }
    std::memset(y.hmask, 0, QK_K / 8);
    int m = 0;
    uint8_t hm = 1;
    for (int j = 0; j < QK_K; ++j) {
        if (L[j] > 3) {
            y.hmask[m] |= hm;
            L[j] = static_cast<int8_t>(L[j] - 4);
        }
        if (++m == QK_K / 8) {
            m = 0;
            hm = static_cast<uint8_t>(hm << 1);
        }
    }
    uint8_t U[QK_K];
    for (int j = 0; j < QK_K; ++j) U[j] = static_cast<uint8_t>(L[j]);
    pack_2bit(U, y.qs);
}

// Q6_K: requantize with the final scales and pack 4 low bits into ql and 2 high bits into qh.
void finish_q6_K(const float* x, block_q6_K& y, int8_t* L) {
    for (int j = 0; j < QK_K / 16; ++j) {
        const float d = fp16_to_fp32(y.d) * static_cast<float>(y.scales[j]);
        if (d == 0.0f) continue;
        for (int ii = 0; ii < 16; ++ii)
            L[16 * j + ii] =
                static_cast<int8_t>(clamp_int(nearest_int(x[16 * j + ii] / d), -32, 31) + 32);
    }
    uint8_t* ql = y.ql;
    uint8_t* qh = y.qh;
    for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
        for (int l = 0; l < 32; ++l) {
            const int q1 = L[j + l + 0] & 0xF, q2 = L[j + l + 32] & 0xF;
            const int q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
            ql[l + 0] = static_cast<uint8_t>(q1 | (q3 << 4));
            ql[l + 32] = static_cast<uint8_t>(q2 | (q4 << 4));
            qh[l] = static_cast<uint8_t>((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                                         ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
        }
    }
}

float sum_sq(const float* x, int n) {
    float s = 0.0f;
    for (int l = 0; l < n; ++l) s += x[l] * x[l];
    return s;
}

// ---- Q2_K
// ----------------------------------------------------------------------------------------

void q2_K_ref(const float* x, block_q2_K& y) {
    uint8_t L[QK_K], Laux[16];
    float weights[16], mins[QK_K / 16], scales[QK_K / 16];
    const float q4scale = 15.f;
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QK_K / 16; ++j) {
        for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
        scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f,
                                     0.1f, 15, true);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0) {
        const float iscale = q4scale / max_scale;
        for (int j = 0; j < QK_K / 16; ++j)
            y.scales[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
        y.d = fp32_to_fp16(max_scale / q4scale);
    } else {
        for (int j = 0; j < QK_K / 16; ++j) y.scales[j] = 0;
        y.d = fp32_to_fp16(0.f);
    }
    if (max_min > 0) {
        const float iscale = q4scale / max_min;
        for (int j = 0; j < QK_K / 16; ++j)
            y.scales[j] |= static_cast<uint8_t>(nearest_int(iscale * mins[j]) << 4);
        y.dmin = fp32_to_fp16(max_min / q4scale);
    } else {
        y.dmin = fp32_to_fp16(0.f);
    }
    for (int j = 0; j < QK_K / 16; ++j) {
        const float d = fp16_to_fp32(y.d) * static_cast<float>(y.scales[j] & 0xF);
        if (d == 0.0f) continue;
        const float dm = fp16_to_fp32(y.dmin) * static_cast<float>(y.scales[j] >> 4);
        for (int ii = 0; ii < 16; ++ii)
            L[16 * j + ii] =
                static_cast<uint8_t>(clamp_int(nearest_int((x[16 * j + ii] + dm) / d), 0, 3));
    }
    pack_2bit(L, y.qs);
}

void q2_K_weighted(const float* x, block_q2_K& y, const float* qw_row) {
    uint8_t L[QK_K], Laux[16], Ls[QK_K / 16], Lm[QK_K / 16];
    float mins[QK_K / 16], scales[QK_K / 16], sw[QK_K / 16], weight[16];
    const float sigma2 = sum_sq(x, QK_K) / QK_K;
    for (int j = 0; j < QK_K / 16; ++j) {
        const float* qw = qw_row + 16 * j;
        for (int l = 0; l < 16; ++l)
            weight[l] = qw[l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
        sw[j] = 0;
        for (int l = 0; l < 16; ++l) sw[j] += weight[l];
        scales[j] = make_qkx3_quants(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j], Laux, -0.9f,
                                     0.05f, 36, false);
    }
    y.d = fp32_to_fp16(make_qp_quants(QK_K / 16, 15, scales, Ls, sw));
    y.dmin = fp32_to_fp16(make_qp_quants(QK_K / 16, 15, mins, Lm, sw));
    const float dm = fp16_to_fp32(y.d), mm = fp16_to_fp32(y.dmin);
    for (int j = 0; j < QK_K / 16; ++j) y.scales[j] = static_cast<uint8_t>(Ls[j] | (Lm[j] << 4));
    for (int j = 0; j < QK_K / 16; ++j) {
        const float d = dm * static_cast<float>(y.scales[j] & 0xF);
        if (d == 0.0f) continue;
        const float m = mm * static_cast<float>(y.scales[j] >> 4);
        for (int ii = 0; ii < 16; ++ii)
            L[16 * j + ii] =
                static_cast<uint8_t>(clamp_int(nearest_int((x[16 * j + ii] + m) / d), 0, 3));
    }
    pack_2bit(L, y.qs);
}

// ---- Q3_K
// ----------------------------------------------------------------------------------------

void q3_K_ref(const float* x, block_q3_K& y) {
    int8_t L[QK_K];
    float scales[QK_K / 16];
    float max_scale = 0, amax = 0;
    for (int j = 0; j < QK_K / 16; ++j) {
        scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j, true);
        const float scale = std::fabs(scales[j]);
        if (scale > amax) {
            amax = scale;
            max_scale = scales[j];
        }
    }
    std::memset(y.scales, 0, 12);
    if (max_scale != 0.0f) {
        const float iscale = -32.f / max_scale;
        for (int j = 0; j < QK_K / 16; ++j) {
            // The reference keeps this in an int8_t before clamping; |iscale*scale| <= 32 anyway.
            const int8_t l8 = static_cast<int8_t>(nearest_int(iscale * scales[j]));
            pack_q3_scale(y.scales, j, clamp_int(l8, -32, 31) + 32);
        }
        y.d = fp32_to_fp16(1 / iscale);
    } else {
        y.d = fp32_to_fp16(0.f);
    }
    finish_q3_K(x, y, L);
}

void q3_K_weighted(const float* x, block_q3_K& y, const float* qw_row) {
    int8_t L[QK_K], Ls[QK_K / 16];
    float scales[QK_K / 16], weight[16], sw[QK_K / 16];
    const float sigma2 = 2 * sum_sq(x, QK_K) / QK_K;
    for (int j = 0; j < QK_K / 16; ++j) {
        const float* qw = qw_row + 16 * j;
        for (int l = 0; l < 16; ++l)
            weight[l] = qw[l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
        float sumw = 0;
        for (int l = 0; l < 16; ++l) sumw += weight[l];
        sw[j] = sumw;
        scales[j] = make_qx_quants(16, 4, x + 16 * j, L + 16 * j, 1, weight);
    }
    std::memset(y.scales, 0, 12);
    const float d_block = make_qx_quants(QK_K / 16, 32, scales, Ls, 1, sw);
    for (int j = 0; j < QK_K / 16; ++j) pack_q3_scale(y.scales, j, Ls[j]);
    y.d = fp32_to_fp16(d_block);
    finish_q3_K(x, y, L);
}

// ---- Q4_K / Q5_K -------------------------------------------------------------------------------

// Reference (no imatrix) scale search shared by Q4_K (nmax 15) and Q5_K (nmax 31).
void k4_ref_scales(const float* x, int nmax, float rmin, int nstep, uint8_t* scales_out,
                   uint16_t* d, uint16_t* dmin, uint8_t* L) {
    uint8_t Laux[32];
    float weights[32], mins[QK_K / 32], scales[QK_K / 32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QK_K / 32; ++j) {
        const float av_x = std::sqrt(sum_sq(x + 32 * j, 32) / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                     rmin, 0.1f, nstep, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < QK_K / 32; ++j) {
        uint8_t ls = static_cast<uint8_t>(nearest_int(inv_scale * scales[j]));
        uint8_t lm = static_cast<uint8_t>(nearest_int(inv_min * mins[j]));
        ls = ls < 63 ? ls : 63;
        lm = lm < 63 ? lm : 63;
        pack_scale_min_k4(scales_out, j, ls, lm);
    }
    *d = fp32_to_fp16(max_scale / 63.f);
    *dmin = fp32_to_fp16(max_min / 63.f);
    requantize_k4(x, scales_out, *d, *dmin, nmax, L);
}

// Importance-weighted scale search shared by Q4_K and Q5_K.
void k4_weighted_scales(const float* x, int nmax, const float* qw_row, uint8_t* scales_out,
                        uint16_t* d, uint16_t* dmin, uint8_t* L) {
    uint8_t Laux[32], Ls[QK_K / 32], Lm[QK_K / 32];
    float weights[32], sw[QK_K / 32], mins[QK_K / 32], scales[QK_K / 32];
    const float sigma2 = 2 * sum_sq(x, QK_K) / QK_K;
    for (int j = 0; j < QK_K / 32; ++j) {
        const float* qw = qw_row + 32 * j;
        for (int l = 0; l < 32; ++l)
            weights[l] = qw[l] * std::sqrt(sigma2 + x[32 * j + l] * x[32 * j + l]);
        float sumw = 0;
        for (int l = 0; l < 32; ++l) sumw += weights[l];
        sw[j] = sumw;
        scales[j] = make_qkx3_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                     -0.9f, 0.05f, 36, false);
    }
    const float d_block = make_qp_quants(QK_K / 32, 63, scales, Ls, sw);
    const float m_block = make_qp_quants(QK_K / 32, 63, mins, Lm, sw);
    for (int j = 0; j < QK_K / 32; ++j) {
        const uint8_t ls = Ls[j] < 63 ? Ls[j] : 63;
        const uint8_t lm = Lm[j] < 63 ? Lm[j] : 63;
        pack_scale_min_k4(scales_out, j, ls, lm);
    }
    *d = fp32_to_fp16(d_block);
    *dmin = fp32_to_fp16(m_block);
    requantize_k4(x, scales_out, *d, *dmin, nmax, L);
}

// ---- Q6_K
// ----------------------------------------------------------------------------------------

void q6_K_one(const float* x, block_q6_K& y, const float* qw_row) {
    int8_t L[QK_K];
    float scales[QK_K / 16];
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < QK_K / 16; ++ib) {
        const float* qw = qw_row ? qw_row + 16 * ib : nullptr;
        const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, 1, qw);
        scales[ib] = scale;
        const float abs_scale = std::fabs(scale);
        if (abs_scale > max_abs_scale) {
            max_abs_scale = abs_scale;
            max_scale = scale;
        }
    }
    if (max_abs_scale < kGroupMaxEps) {
        std::memset(&y, 0, sizeof(block_q6_K));
        y.d = fp32_to_fp16(0.f);
        return;
    }
    const float iscale = -128.f / max_scale;
    y.d = fp32_to_fp16(1 / iscale);
    for (int ib = 0; ib < QK_K / 16; ++ib) {
        const int v = nearest_int(iscale * scales[ib]);
        y.scales[ib] = static_cast<int8_t>(v < 127 ? v : 127);
    }
    finish_q6_K(x, y, L);
}

}  // namespace

void quantize_q2_K_w(const float* src, void* dst, int64_t n, const float* imatrix) {
    auto* y = static_cast<block_q2_K*>(dst);
    for (int64_t i = 0; i < n / QK_K; ++i) {
        if (imatrix)
            q2_K_weighted(src + QK_K * i, y[i], imatrix + QK_K * i);
        else
            q2_K_ref(src + QK_K * i, y[i]);
    }
}

void quantize_q3_K_w(const float* src, void* dst, int64_t n, const float* imatrix) {
    auto* y = static_cast<block_q3_K*>(dst);
    for (int64_t i = 0; i < n / QK_K; ++i) {
        if (imatrix)
            q3_K_weighted(src + QK_K * i, y[i], imatrix + QK_K * i);
        else
            q3_K_ref(src + QK_K * i, y[i]);
    }
}

void quantize_q4_K_w(const float* src, void* dst, int64_t n, const float* imatrix) {
    auto* y = static_cast<block_q4_K*>(dst);
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const float* x = src + QK_K * i;
        std::memset(y[i].scales, 0, K_SCALE_SIZE);
        if (imatrix)
            k4_weighted_scales(x, 15, imatrix + QK_K * i, y[i].scales, &y[i].d, &y[i].dmin, L);
        else
            k4_ref_scales(x, 15, -1.f, 20, y[i].scales, &y[i].d, &y[i].dmin, L);
        pack_q4_K_quants(L, y[i].qs);
    }
}

void quantize_q5_K_w(const float* src, void* dst, int64_t n, const float* imatrix) {
    auto* y = static_cast<block_q5_K*>(dst);
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const float* x = src + QK_K * i;
        std::memset(y[i].scales, 0, K_SCALE_SIZE);
        if (imatrix)
            k4_weighted_scales(x, 31, imatrix + QK_K * i, y[i].scales, &y[i].d, &y[i].dmin, L);
        else
            k4_ref_scales(x, 31, -0.5f, 15, y[i].scales, &y[i].d, &y[i].dmin, L);
        pack_q5_K_quants(L, y[i].qs, y[i].qh);
    }
}

void quantize_q6_K_w(const float* src, void* dst, int64_t n, const float* imatrix) {
    auto* y = static_cast<block_q6_K*>(dst);
    for (int64_t i = 0; i < n / QK_K; ++i)
        q6_K_one(src + QK_K * i, y[i], imatrix ? imatrix + QK_K * i : nullptr);
}

}  // namespace duan::kernels::scalar
