// Prefill GEMM for Q4_0, Q5_0 and Q8_0 weights with AVX-512 VNNI (vpdpbusd on 512-bit registers).
//
// Weight rows are repacked 16 at a time (x86_gemm.h) so that one zmm holds 4 consecutive
// elements of each of the 16 rows: a vpdpbusd with the 4 matching activation bytes broadcast
// then advances 16 row dots by 4 elements at once, and the 16 per-row block sums land in the 16
// lanes, ready to be scaled by the 16 row scales in one multiply. vpdpbusd wants u8 × s8, so the
// activations are stored offset by +128 (u8) and each repacked weight block carries
// -128 * sum(w) per row as the accumulator's starting value:
//     sum (y + 128) w - 128 sum w = sum y w   (exact in int32).
// Integer parts are exact; per-block float scaling differs from the row-dot path only in the
// order of the float sums.
// gcc 12 warns about _mm512_undefined_ps() inside its own intrinsic headers (a false positive).
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

void gemm_prepare_act(DType at, const void* src, int64_t K, void* dst) {
    auto* out = static_cast<GemmActBlock*>(dst);
    const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
    for (int64_t b = 0; b < K / 32; ++b) {
        const int8_t* qs;
        if (at == DType::Q8_K) {
            const auto& y = static_cast<const block_q8_K*>(src)[b / 8];
            const int j = static_cast<int>(b % 8);
            qs = y.qs + 32 * j;
            out[b].d = y.d;
            out[b].s = y.d * static_cast<float>(y.bsums[2 * j] + y.bsums[2 * j + 1]);
        } else {
            const auto& y = static_cast<const block_q8_0*>(src)[b];
            qs = y.qs;
            out[b].d = fp16_to_fp32(y.d);
            out[b].s = 0.0f;  // only the K-quants' mins use it
        }
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[b].q), _mm256_xor_si256(q, flip));
    }
}

namespace {

inline __m256i nibbles32(const uint8_t* qs) {
    const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0F));
}

// Byte j = 0xFF where bit j of the 32-bit word is set.
inline __m256i bits_to_bytes(const uint8_t* p) {
    uint32_t x;
    std::memcpy(&x, p, 4);
    return _mm256_movm_epi8(static_cast<__mmask32>(x));
}

// One 32-element block of a row as signed bytes in element order, its scale and (K-quants) the
// coefficient of its min term.
inline __m256i block_s8(DType t, const uint8_t* row, int64_t b, float* d, float* m) {
    *m = 0.0f;
    if (t == DType::Q4_K) {
        const auto& blk = reinterpret_cast<const block_q4_K*>(row)[b / 8];
        const int j = static_cast<int>(b % 8);
        const uint8_t* sc = blk.scales;
        int s, mn;
        if (j < 4) {
            s = sc[j] & 63;
            mn = sc[j + 4] & 63;
        } else {
            s = (sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4);
            mn = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
        }
        *d = fp16_to_fp32(blk.d) * static_cast<float>(s);
        *m = fp16_to_fp32(blk.dmin) * static_cast<float>(mn);
        const __m256i q =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs + 32 * (j / 2)));
        const __m256i v = (j & 1) ? _mm256_srli_epi16(q, 4) : q;
        return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
    }
    if (t == DType::Q4_0) {
        const auto& blk = reinterpret_cast<const block_q4_0*>(row)[b];
        *d = fp16_to_fp32(blk.d);
        return _mm256_sub_epi8(nibbles32(blk.qs), _mm256_set1_epi8(8));
    }
    if (t == DType::Q5_0) {
        const auto& blk = reinterpret_cast<const block_q5_0*>(row)[b];
        *d = fp16_to_fp32(blk.d);
        const __m256i hi = _mm256_and_si256(bits_to_bytes(blk.qh), _mm256_set1_epi8(0x10));
        return _mm256_sub_epi8(_mm256_or_si256(nibbles32(blk.qs), hi), _mm256_set1_epi8(16));
    }
    const auto& blk = reinterpret_cast<const block_q8_0*>(row)[b];
    *d = fp16_to_fp32(blk.d);
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs));
}

}  // namespace

void gemm_pack16(DType t, const void* w, size_t stride, int64_t rows, int64_t K, void* dst) {
    auto* out = static_cast<GemmWeightBlock*>(dst);
    const int64_t nb = K / 32;
    const auto* base = static_cast<const uint8_t*>(w);
    const __m512i u128 = _mm512_set1_epi8(static_cast<char>(0x80));
    for (int64_t b = 0; b < nb; ++b) {
        GemmWeightBlock& o = out[b];
        __m512i z[8];  // z[i]: rows 2i and 2i+1, each 8 groups of 4 bytes
        for (int i = 0; i < 8; ++i) {
            __m256i q[2];
            for (int h = 0; h < 2; ++h) {
                const int r = 2 * i + h;
                float d = 0.0f, m = 0.0f;
                q[h] =
                    r < rows ? block_s8(t, base + r * stride, b, &d, &m) : _mm256_setzero_si256();
                o.d[r] = d;
                o.m[r] = m;
            }
            z[i] = _mm512_inserti64x4(_mm512_castsi256_si512(q[0]), q[1], 1);
        }
        // transpose 16 rows x 8 groups -> q[k] = group k of every row. Stage 1, per 4 rows
        // (z[2j], z[2j+1]): lo = groups 0..3, hi = groups 4..7, each 128-bit lane one group of the
        // 4 rows. Stage 2: a 4×4 transpose of 128-bit lanes across the 4 row quads.
        const __m512i i_lo =
            _mm512_setr_epi32(0, 8, 16, 24, 1, 9, 17, 25, 2, 10, 18, 26, 3, 11, 19, 27);
        const __m512i i_hi = _mm512_add_epi32(i_lo, _mm512_set1_epi32(4));
        __m512i tq[2][4];
        for (int j = 0; j < 4; ++j) {
            tq[0][j] = _mm512_permutex2var_epi32(z[2 * j], i_lo, z[2 * j + 1]);
            tq[1][j] = _mm512_permutex2var_epi32(z[2 * j], i_hi, z[2 * j + 1]);
        }
        // the offset correction -128 * sum(q) per row (lane), from the transposed groups
        __m512i s128 = _mm512_setzero_si512();
        for (int h = 0; h < 2; ++h) {
            const __m512i u0 = _mm512_shuffle_i32x4(tq[h][0], tq[h][1], 0x44);
            const __m512i u1 = _mm512_shuffle_i32x4(tq[h][0], tq[h][1], 0xEE);
            const __m512i u2 = _mm512_shuffle_i32x4(tq[h][2], tq[h][3], 0x44);
            const __m512i u3 = _mm512_shuffle_i32x4(tq[h][2], tq[h][3], 0xEE);
            const __m512i g[4] = {
                _mm512_shuffle_i32x4(u0, u2, 0x88), _mm512_shuffle_i32x4(u0, u2, 0xDD),
                _mm512_shuffle_i32x4(u1, u3, 0x88), _mm512_shuffle_i32x4(u1, u3, 0xDD)};
            for (int k = 0; k < 4; ++k) {
                _mm512_store_si512(o.q[4 * h + k], g[k]);
                s128 = _mm512_dpbusd_epi32(s128, u128, g[k]);
            }
        }
        _mm512_store_si512(o.neg_corr, _mm512_sub_epi32(_mm512_setzero_si512(), s128));
    }
}

namespace {

// NA activation rows × 16 packed weight rows: out[a*16 + r].
template <int NA, bool MINS>
inline void kernel(int64_t nb, const GemmWeightBlock* w, const GemmActBlock* const* act, float* out,
                   size_t ldy, __mmask16 rows) {
    __m512 acc[NA];
    for (int a = 0; a < NA; ++a) acc[a] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        const GemmWeightBlock& wb = w[b];
        const __m512i init = _mm512_loadu_si512(wb.neg_corr);
        __m512i s[NA];
        for (int a = 0; a < NA; ++a) s[a] = init;
        for (int k = 0; k < 8; ++k) {
            const __m512i wk = _mm512_loadu_si512(wb.q[k]);
            for (int a = 0; a < NA; ++a) {
                int32_t y4;
                std::memcpy(&y4, act[a][b].q + 4 * k, 4);
                s[a] = _mm512_dpbusd_epi32(s[a], _mm512_set1_epi32(y4), wk);
            }
        }
        const __m512 dx = _mm512_loadu_ps(wb.d);
        for (int a = 0; a < NA; ++a)
            acc[a] = _mm512_fmadd_ps(_mm512_mul_ps(dx, _mm512_set1_ps(act[a][b].d)),
                                     _mm512_cvtepi32_ps(s[a]), acc[a]);
        if constexpr (MINS) {
            const __m512 mx = _mm512_loadu_ps(wb.m);
            for (int a = 0; a < NA; ++a)
                acc[a] = _mm512_fnmadd_ps(mx, _mm512_set1_ps(act[a][b].s), acc[a]);
        }
    }
    for (int a = 0; a < NA; ++a) _mm512_mask_storeu_ps(out + a * ldy, rows, acc[a]);
}

}  // namespace

namespace {
template <bool MINS>
void gemm_16xn_impl(int64_t K, const void* packed, const void* act, size_t act_stride,
                    int64_t n_act, int64_t n_rows, float* out, size_t ldy) {
    const auto rows = static_cast<__mmask16>((1u << std::min<int64_t>(n_rows, 16)) - 1u);
    const auto* w = static_cast<const GemmWeightBlock*>(packed);
    const auto* a8 = static_cast<const uint8_t*>(act);
    const int64_t nb = K / 32;
    const GemmActBlock* rp[8];
    int64_t a = 0;
    for (; a + 8 <= n_act; a += 8) {
        for (int i = 0; i < 8; ++i)
            rp[i] = reinterpret_cast<const GemmActBlock*>(a8 + (a + i) * act_stride);
        kernel<8, MINS>(nb, w, rp, out + a * ldy, ldy, rows);
    }
    for (; a + 4 <= n_act; a += 4) {
        for (int i = 0; i < 4; ++i)
            rp[i] = reinterpret_cast<const GemmActBlock*>(a8 + (a + i) * act_stride);
        kernel<4, MINS>(nb, w, rp, out + a * ldy, ldy, rows);
    }
    for (; a < n_act; ++a) {
        rp[0] = reinterpret_cast<const GemmActBlock*>(a8 + a * act_stride);
        kernel<1, MINS>(nb, w, rp, out + a * ldy, ldy, rows);
    }
}
}  // namespace

void gemm_16xn(DType t, int64_t K, const void* packed, const void* act, size_t act_stride,
               int64_t n_act, int64_t rows, float* out, size_t ldy) {
    if (t == DType::Q4_K)
        gemm_16xn_impl<true>(K, packed, act, act_stride, n_act, rows, out, ldy);
    else
        gemm_16xn_impl<false>(K, packed, act, act_stride, n_act, rows, out, ldy);
}

}  // namespace duan::kernels::avx512vnni
