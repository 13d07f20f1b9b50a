// Prefill GEMM for Q6_K weights with AVX-512 VNNI, bit-identical to the Q6_K row kernels.
//
// The reference sums a Q6_K dot product per 256-element super-block as one exact integer,
//     sumi = sum_j scale_j * (sum of the 16 products of sub-block j),
// then adds (d_w * d_a) * float(sumi) to a single float (scalar_q_k.cpp, quant_dot_body.h). This
// GEMM keeps that: 16 weight rows in the 16 lanes of a zmm (x86_gemm.h GemmQ6KBlock: quants as
// s8 q - 32, interleaved as for the legacy GEMM), activations +128 as u8 (GemmActBlock), per
// sub-block 4 vpdpbusd give the 16 rows' raw sums, which are scaled by the rows' sub-block scales
// (vpmulld) and added in int32; the +128 offset comes back as one precomputed per-row constant
//     sum_j scale_j * (-128 * sum of sub-block j's quants).
// All integer steps are exact (|sumi| < 2^31), the float steps are the reference's, per lane.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "core/fp16.h"
#include "kernels/blocks.h"
#include "kernels/x86/x86_gemm.h"

namespace duan::kernels::avx512vnni {

void gemm_q6_k_pack(const void* w, size_t stride, int64_t rows, int64_t K, void* dst) {
    auto* out = static_cast<GemmQ6KBlock*>(dst);
    const auto* base = static_cast<const uint8_t*>(w);
    const int64_t nsb = K / QK_K;
    const __m512i idx = _mm512_setr_epi32(0, 64, 128, 192, 256, 320, 384, 448, 512, 576, 640, 704,
                                          768, 832, 896, 960);
    for (int64_t i = 0; i < nsb; ++i) {
        GemmQ6KBlock& o = out[i];
        alignas(64) int8_t v[16][QK_K];  // row r: its 256 quants (q - 32) in element order
        for (int r = 0; r < 16; ++r) {
            if (r >= rows) {
                std::memset(v[r], 0, QK_K);
                for (int j = 0; j < 16; ++j) o.scale[j][r] = 0;
                o.corr[r] = 0;
                o.d[r] = 0.0f;
                continue;
            }
            const auto& b = reinterpret_cast<const block_q6_K*>(base + r * stride)[i];
            for (int g = 0; g < 2; ++g)
                for (int s = 0; s < 4; ++s)
                    for (int l = 0; l < 32; ++l) {
                        const uint8_t lb = b.ql[64 * g + 32 * (s % 2) + l];
                        const int low = s < 2 ? (lb & 0xF) : (lb >> 4);
                        const int high = (b.qh[32 * g + l] >> (2 * s)) & 3;
                        v[r][128 * g + 32 * s + l] = static_cast<int8_t>((low | (high << 4)) - 32);
                    }
            int corr = 0;
            for (int j = 0; j < 16; ++j) {
                int sq = 0;
                for (int l = 0; l < 16; ++l) sq += v[r][16 * j + l];
                o.scale[j][r] = b.scales[j];
                corr += b.scales[j] * (-128 * sq);
            }
            o.corr[r] = corr;
            o.d[r] = fp16_to_fp32(b.d);
        }
        // q[k] lane r = bytes 4k..4k+3 of row r
        const int32_t* v32 = reinterpret_cast<const int32_t*>(&v[0][0]);
        for (int k = 0; k < QK_K / 4; ++k)
            _mm512_store_si512(o.q[k], _mm512_i32gather_epi32(
                                           _mm512_add_epi32(idx, _mm512_set1_epi32(k)), v32, 4));
    }
}

namespace {

// NA activation rows × 16 packed weight rows: out[a * ldy + r] for r < rows.
template <int NA>
inline void kernel(int64_t nsb, const GemmQ6KBlock* w, const GemmActBlock* const* act, int rows,
                   float* out, size_t ldy) {
    __m512 acc[NA];
#pragma GCC unroll 8
    for (int a = 0; a < NA; ++a) acc[a] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nsb; ++i) {
        const GemmQ6KBlock& wb = w[i];
        const __m512i corr = _mm512_load_si512(wb.corr);
        __m512i isum[NA];
#pragma GCC unroll 8
        for (int a = 0; a < NA; ++a) isum[a] = corr;
        for (int j = 0; j < 16; ++j) {
            __m512i raw[NA];
#pragma GCC unroll 8
            for (int a = 0; a < NA; ++a) raw[a] = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int k = 0; k < 4; ++k) {
                const __m512i wk = _mm512_load_si512(wb.q[4 * j + k]);
#pragma GCC unroll 8
                for (int a = 0; a < NA; ++a) {
                    int32_t y4;
                    std::memcpy(&y4, act[a][8 * i + j / 2].q + 16 * (j % 2) + 4 * k, 4);
                    raw[a] = _mm512_dpbusd_epi32(raw[a], _mm512_set1_epi32(y4), wk);
                }
            }
            const __m512i sc = _mm512_load_si512(wb.scale[j]);
#pragma GCC unroll 8
            for (int a = 0; a < NA; ++a)
                isum[a] = _mm512_add_epi32(isum[a], _mm512_mullo_epi32(raw[a], sc));
        }
        const __m512 dw = _mm512_load_ps(wb.d);
#pragma GCC unroll 8
        for (int a = 0; a < NA; ++a) {
            // the reference: sum += (d_w * d_a) * float(sumi), no FMA
            const __m512 t = _mm512_mul_ps(_mm512_mul_ps(dw, _mm512_set1_ps(act[a][8 * i].d)),
                                           _mm512_cvtepi32_ps(isum[a]));
            acc[a] = _mm512_add_ps(acc[a], t);
        }
    }
    const __mmask16 m = static_cast<__mmask16>((1u << rows) - 1u);
#pragma GCC unroll 8
    for (int a = 0; a < NA; ++a) _mm512_mask_storeu_ps(out + a * ldy, m, acc[a]);
}

}  // namespace

void gemm_q6_k(int64_t K, const void* packed, const void* act, size_t act_stride, int64_t n_act,
               int64_t rows, float* y, size_t ldy) {
    const auto* w = static_cast<const GemmQ6KBlock*>(packed);
    const auto* a8 = static_cast<const uint8_t*>(act);
    const int64_t nsb = K / QK_K;
    const int r = static_cast<int>(std::min<int64_t>(rows, 16));
    const GemmActBlock* rp[8];
    int64_t a = 0;
    for (; a + 8 <= n_act; a += 8) {
        for (int i = 0; i < 8; ++i)
            rp[i] = reinterpret_cast<const GemmActBlock*>(a8 + (a + i) * act_stride);
        kernel<8>(nsb, w, rp, r, y + a * ldy, ldy);
    }
    for (; a + 4 <= n_act; a += 4) {
        for (int i = 0; i < 4; ++i)
            rp[i] = reinterpret_cast<const GemmActBlock*>(a8 + (a + i) * act_stride);
        kernel<4>(nsb, w, rp, r, y + a * ldy, ldy);
    }
    for (; a < n_act; ++a) {
        rp[0] = reinterpret_cast<const GemmActBlock*>(a8 + a * act_stride);
        kernel<1>(nsb, w, rp, r, y + a * ldy, ldy);
    }
}

}  // namespace duan::kernels::avx512vnni
