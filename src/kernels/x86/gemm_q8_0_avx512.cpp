// Prefill GEMM for Q8_0 weights with AVX-512 VNNI, bit-identical to the Q8_0 row kernels.
//
// The reference sums a Q8_0 dot product in a fixed order: 8 float lanes, lane j of block b holding
// the integer sum of elements 4j..4j+3 (exact), one FMA per block with d_w * d_a, then a fixed
// horizontal sum (quant_dot_body.h: hsum_ps). Changing that order moves the golden logits, so
// this GEMM keeps one 8-lane float accumulator per output and packs two outputs per zmm:
//   - a packed weight pair (GemmQ8Pair) holds block b of rows r and r+1 side by side (64 bytes,
//     lanes 0..7 row r, 8..15 row r+1), their scales expanded to 8 lanes each, and per lane
//     -128 * (sum of its 4 weights);
//   - the activation block (GemmActBlock, quants +128 as u8) is broadcast to both halves;
//   - one vpdpbusd starting from the correction gives both rows' 8 exact lane sums
//     (sum (y + 128) w - 128 sum w = sum y w), then cvt, d_w * d_a, FMA -- the row kernel's ops.
// The end is the row kernel's horizontal sum on each 256-bit half.
//
// Register tile: 4 weight pairs (8 rows) × A <= 4 activation rows = 16 accumulators.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>

#include "core/fp16.h"
#include "kernels/blocks.h"
#include "kernels/x86/x86_gemm.h"

namespace duan::kernels::avx512vnni {
namespace {

constexpr int kPairs = kGemmQ8Rows / 2;  // weight pairs in a panel
constexpr int kTileP = 4;                // weight pairs per register tile
constexpr int kTileA = 4;                // activation rows per register tile

// The row kernel's horizontal sum (quant_dot_body.h hsum_ps), same instructions in the same order.
inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// Weight pairs [p0, p0 + kTileP) of the panel against A activation rows, every block; writes the
// outputs of rows that exist (< rows) into y (row a of the tile at y + a * ldy, columns n).
template <int A>
void tile(int64_t nb, const GemmQ8Pair* panel, int p0, const GemmActBlock* const* act, int rows,
          float* y, size_t ldy) {
    __m512 acc[kTileP][A];
    for (int p = 0; p < kTileP; ++p)
        for (int a = 0; a < A; ++a) acc[p][a] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        const GemmQ8Pair* w = panel + b * kPairs + p0;
        __m512i av[A];
        __m512 ad[A];
        for (int a = 0; a < A; ++a) {
            av[a] = _mm512_broadcast_i64x4(
                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(act[a][b].q)));
            ad[a] = _mm512_set1_ps(act[a][b].d);
        }
        for (int p = 0; p < kTileP; ++p) {
            const __m512i wq = _mm512_load_si512(w[p].q);
            const __m512i corr = _mm512_load_si512(w[p].neg_corr);
            const __m512 wd = _mm512_load_ps(w[p].d);
            for (int a = 0; a < A; ++a) {
                const __m512i s = _mm512_dpbusd_epi32(corr, av[a], wq);
                acc[p][a] =
                    _mm512_fmadd_ps(_mm512_mul_ps(wd, ad[a]), _mm512_cvtepi32_ps(s), acc[p][a]);
            }
        }
    }
    for (int p = 0; p < kTileP; ++p) {
        const int r = 2 * (p0 + p);
        for (int a = 0; a < A; ++a) {
            if (r < rows) y[a * ldy + r] = hsum8(_mm512_castps512_ps256(acc[p][a]));
            if (r + 1 < rows) y[a * ldy + r + 1] = hsum8(_mm512_extractf32x8_ps(acc[p][a], 1));
        }
    }
}

}  // namespace

void gemm_q8_0_pack(const void* w, size_t stride, int64_t rows, int64_t K, void* dst) {
    auto* out = static_cast<GemmQ8Pair*>(dst);
    const auto* base = static_cast<const uint8_t*>(w);
    const int64_t nb = K / 32;
    const __m512i u128 = _mm512_set1_epi8(static_cast<char>(0x80));
    for (int64_t b = 0; b < nb; ++b) {
        for (int p = 0; p < kPairs; ++p) {
            __m256i q[2];
            float d[2];
            for (int h = 0; h < 2; ++h) {
                const int64_t r = 2 * p + h;
                if (r < rows) {
                    const auto& blk = reinterpret_cast<const block_q8_0*>(base + r * stride)[b];
                    q[h] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs));
                    d[h] = fp16_to_fp32(blk.d);
                } else {
                    q[h] = _mm256_setzero_si256();
                    d[h] = 0.0f;
                }
            }
            GemmQ8Pair& o = out[b * kPairs + p];
            const __m512i wq = _mm512_inserti64x4(_mm512_castsi256_si512(q[0]), q[1], 1);
            _mm512_store_si512(o.q, wq);
            const __m512i sum128 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u128, wq);
            _mm512_store_si512(o.neg_corr, _mm512_sub_epi32(_mm512_setzero_si512(), sum128));
            _mm512_store_ps(o.d, _mm512_insertf32x8(_mm512_set1_ps(d[0]), _mm256_set1_ps(d[1]), 1));
        }
    }
}

void gemm_q8_0(int64_t K, const void* packed, const void* act, size_t act_stride, int64_t n_act,
               int64_t rows, float* y, size_t ldy) {
    const auto* panel = static_cast<const GemmQ8Pair*>(packed);
    const auto* a8 = static_cast<const uint8_t*>(act);
    const int64_t nb = K / 32;
    const int r = static_cast<int>(std::min<int64_t>(rows, kGemmQ8Rows));
    // Sub-panel outer: its 4 pairs × nb blocks stay in L1/L2 while the activation rows stream.
    for (int p0 = 0; p0 < kPairs; p0 += kTileP) {
        if (2 * p0 >= r) break;
        const GemmActBlock* rowp[kTileA];
        int64_t a = 0;
        for (; a < n_act; a += kTileA) {
            const int na = static_cast<int>(std::min<int64_t>(kTileA, n_act - a));
            for (int i = 0; i < na; ++i)
                rowp[i] = reinterpret_cast<const GemmActBlock*>(a8 + (a + i) * act_stride);
            float* yt = y + a * ldy;
            switch (na) {
                case 4:
                    tile<4>(nb, panel, p0, rowp, r, yt, ldy);
                    break;
                case 3:
                    tile<3>(nb, panel, p0, rowp, r, yt, ldy);
                    break;
                case 2:
                    tile<2>(nb, panel, p0, rowp, r, yt, ldy);
                    break;
                default:
                    tile<1>(nb, panel, p0, rowp, r, yt, ldy);
                    break;
            }
        }
    }
}

}  // namespace duan::kernels::avx512vnni
