// Scalar kernels for the K-quants (256-element super-blocks): dequantize Q2_K..Q6_K and Q8_K,
// quantize activations to Q8_K, and the dots Q{2,3,4,5,6}_K · Q8_K.
//
// Each super-block is first unpacked into its integer quants q[256] and integer sub-block scales
// (and mins); the dot then sums sc_j * sum(q * a) over sub-blocks in int32 (exact: at most
// 256 * 127 * 63 * 127 < 2^31) and scales once per super-block by d_w * d_act, subtracting
// dmin_w * d_act * sum_j m_j * bsums_j for the types with mins — the reference's arithmetic.
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

namespace duan::kernels::scalar {
namespace {

// ---- unpacking helpers -------------------------------------------------------------------------

// Q2_K / Q3_K low bits: element 128g + 32s + l sits in qs[32g + l] at bit shift 2s.
inline int q2_low_bits(const uint8_t* qs, int e) {
    const int g = e / 128, s = (e % 128) / 32, l = e % 32;
    return (qs[32 * g + l] >> (2 * s)) & 3;
}

// Q2_K: unsigned quants in [0, 3]; scales[j] low nibble = scale, high nibble = min.
void unpack_q2_K(const block_q2_K& b, int q[QK_K]) {
    for (int e = 0; e < QK_K; ++e) q[e] = q2_low_bits(b.qs, e);
}

// Q3_K: signed quants in [-4, 3] (minus 4 where the hmask bit is clear), and 16 6-bit scales
// (stored with a +32 offset) packed in 12 bytes.
void unpack_q3_K(const block_q3_K& b, int q[QK_K], int scales[16]) {
    for (int e = 0; e < QK_K; ++e) {
        const bool hbit = (b.hmask[e % 32] >> (e / 32)) & 1;
        q[e] = q2_low_bits(b.qs, e) - (hbit ? 0 : 4);
    }
    for (int j = 0; j < 16; ++j) {
        const int low = j < 8 ? (b.scales[j] & 0xF) : (b.scales[j - 8] >> 4);
        const int high = (b.scales[8 + j % 4] >> (2 * (j / 4))) & 3;
        scales[j] = (low | (high << 4)) - 32;
    }
}

// Q4_K / Q5_K: 8 6-bit scales and 8 6-bit mins packed in 12 bytes. For j < 4 the low 6 bits of
// bytes j and j+4; for j >= 4 a nibble of byte j+4 plus the top 2 bits of bytes j-4 / j.
void unpack_scale_min_k4(const uint8_t* s, int j, int* sc, int* m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// Q4_K: element 64g + l is the low nibble of qs[32g + l], element 64g + 32 + l the high nibble.
void unpack_q4_K(const block_q4_K& b, int q[QK_K]) {
    for (int g = 0; g < QK_K / 64; ++g)
        for (int l = 0; l < 32; ++l) {
            q[64 * g + l] = b.qs[32 * g + l] & 0xF;
            q[64 * g + 32 + l] = b.qs[32 * g + l] >> 4;
        }
}

// Q5_K: Q4_K's nibbles plus a fifth bit: element 64g + l is bit 2g of qh[l], 64g + 32 + l bit 2g+1.
void unpack_q5_K(const block_q5_K& b, int q[QK_K]) {
    for (int g = 0; g < QK_K / 64; ++g)
        for (int l = 0; l < 32; ++l) {
            q[64 * g + l] = (b.qs[32 * g + l] & 0xF) | (((b.qh[l] >> (2 * g)) & 1) << 4);
            q[64 * g + 32 + l] = (b.qs[32 * g + l] >> 4) | (((b.qh[l] >> (2 * g + 1)) & 1) << 4);
        }
}

// Q6_K: signed quants in [-32, 31]. Per 128-element group g (ql 64 bytes, qh 32 bytes): element
// 128g + 32s + l takes a nibble of ql[64g + 32(s%2) + l] (low for s < 2) and bits 2s..2s+1 of
// qh[32g + l].
void unpack_q6_K(const block_q6_K& b, int q[QK_K]) {
    for (int g = 0; g < QK_K / 128; ++g)
        for (int s = 0; s < 4; ++s)
            for (int l = 0; l < 32; ++l) {
                const uint8_t lbyte = b.ql[64 * g + 32 * (s % 2) + l];
                const int low = s < 2 ? (lbyte & 0xF) : (lbyte >> 4);
                const int high = (b.qh[32 * g + l] >> (2 * s)) & 3;
                q[128 * g + 32 * s + l] = (low | (high << 4)) - 32;
            }
}

// sum over the 16 (or 32) elements of one sub-block.
inline int dot_ints(const int* q, const int8_t* a, int len) {
    int s = 0;
    for (int l = 0; l < len; ++l) s += q[l] * a[l];
    return s;
}

}  // namespace

// ---- dequantize
// ------------------------------------------------------------------------------------

void dequantize_q2_K(const void* src, float* dst, int64_t n) {
    const auto* blocks = static_cast<const block_q2_K*>(src);
    int q[QK_K];
    for (int64_t i = 0; i < n / QK_K; ++i, dst += QK_K) {
        const block_q2_K& b = blocks[i];
        unpack_q2_K(b, q);
        const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
        for (int j = 0; j < 16; ++j) {
            const float dl = d * static_cast<float>(b.scales[j] & 0xF);
            const float ml = dmin * static_cast<float>(b.scales[j] >> 4);
            for (int l = 0; l < 16; ++l)
                dst[16 * j + l] = dl * static_cast<float>(q[16 * j + l]) - ml;
        }
    }
}

void dequantize_q3_K(const void* src, float* dst, int64_t n) {
    const auto* blocks = static_cast<const block_q3_K*>(src);
    int q[QK_K], sc[16];
    for (int64_t i = 0; i < n / QK_K; ++i, dst += QK_K) {
        unpack_q3_K(blocks[i], q, sc);
        const float d = fp16_to_fp32(blocks[i].d);
        for (int j = 0; j < 16; ++j) {
            const float dl = d * static_cast<float>(sc[j]);
            for (int l = 0; l < 16; ++l) dst[16 * j + l] = dl * static_cast<float>(q[16 * j + l]);
        }
    }
}

void dequantize_q4_K(const void* src, float* dst, int64_t n) {
    const auto* blocks = static_cast<const block_q4_K*>(src);
    int q[QK_K];
    for (int64_t i = 0; i < n / QK_K; ++i, dst += QK_K) {
        const block_q4_K& b = blocks[i];
        unpack_q4_K(b, q);
        const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
        for (int j = 0; j < 8; ++j) {
            int sc, m;
            unpack_scale_min_k4(b.scales, j, &sc, &m);
            const float dl = d * static_cast<float>(sc), ml = dmin * static_cast<float>(m);
            for (int l = 0; l < 32; ++l)
                dst[32 * j + l] = dl * static_cast<float>(q[32 * j + l]) - ml;
        }
    }
}

void dequantize_q5_K(const void* src, float* dst, int64_t n) {
    const auto* blocks = static_cast<const block_q5_K*>(src);
    int q[QK_K];
    for (int64_t i = 0; i < n / QK_K; ++i, dst += QK_K) {
        const block_q5_K& b = blocks[i];
        unpack_q5_K(b, q);
        const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
        for (int j = 0; j < 8; ++j) {
            int sc, m;
            unpack_scale_min_k4(b.scales, j, &sc, &m);
            const float dl = d * static_cast<float>(sc), ml = dmin * static_cast<float>(m);
            for (int l = 0; l < 32; ++l)
                dst[32 * j + l] = dl * static_cast<float>(q[32 * j + l]) - ml;
        }
    }
}

void dequantize_q6_K(const void* src, float* dst, int64_t n) {
    const auto* blocks = static_cast<const block_q6_K*>(src);
    int q[QK_K];
    for (int64_t i = 0; i < n / QK_K; ++i, dst += QK_K) {
        unpack_q6_K(blocks[i], q);
        const float d = fp16_to_fp32(blocks[i].d);
        for (int j = 0; j < 16; ++j) {
            const float dl = d * static_cast<float>(blocks[i].scales[j]);
            for (int l = 0; l < 16; ++l) dst[16 * j + l] = dl * static_cast<float>(q[16 * j + l]);
        }
    }
}

void dequantize_q8_K(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const block_q8_K*>(src);
    for (int64_t i = 0; i < n / QK_K; ++i, dst += QK_K)
        for (int j = 0; j < QK_K; ++j) dst[j] = b[i].d * static_cast<float>(b[i].qs[j]);
}

// ---- activation quantizer
// ------------------------------------------------------------------------

// d = max / -127 where max is the signed value of largest magnitude, so that element maps to -127
// exactly; q = nearest_int(x / d) capped at 127. bsums: sums of each 16 quants.
void quantize_q8_K(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<block_q8_K*>(dst);
    for (int64_t i = 0; i < n / QK_K; ++i, src += QK_K) {
        float max = 0.0f, amax = 0.0f;
        for (int j = 0; j < QK_K; ++j) {
            const float ax = std::fabs(src[j]);
            if (ax > amax) {
                amax = ax;
                max = src[j];
            }
        }
        if (amax == 0.0f) {
            std::memset(&b[i], 0, sizeof(block_q8_K));
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; ++j) {
            const int v = nearest_int(iscale * src[j]);
            b[i].qs[j] = static_cast<int8_t>(v < 127 ? v : 127);
        }
        for (int j = 0; j < QK_K / 16; ++j) {
            int sum = 0;
            for (int l = 0; l < 16; ++l) sum += b[i].qs[16 * j + l];
            b[i].bsums[j] = static_cast<int16_t>(sum);
        }
        b[i].d = 1.0f / iscale;
    }
}

// ---- dots
// ------------------------------------------------------------------------------------------

float vec_dot_q2_K_q8_K(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q2_K*>(w);
    const auto* y = static_cast<const block_q8_K*>(act);
    int q[QK_K];
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        unpack_q2_K(x[i], q);
        int sumi = 0, summ = 0;
        for (int j = 0; j < 16; ++j) {
            sumi += (x[i].scales[j] & 0xF) * dot_ints(q + 16 * j, y[i].qs + 16 * j, 16);
            summ += (x[i].scales[j] >> 4) * y[i].bsums[j];
        }
        const float dall = y[i].d * fp16_to_fp32(x[i].d);
        const float dmin = y[i].d * fp16_to_fp32(x[i].dmin);
        sum += dall * static_cast<float>(sumi) - dmin * static_cast<float>(summ);
    }
    return sum;
}

float vec_dot_q3_K_q8_K(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q3_K*>(w);
    const auto* y = static_cast<const block_q8_K*>(act);
    int q[QK_K], sc[16];
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        unpack_q3_K(x[i], q, sc);
        int sumi = 0;
        for (int j = 0; j < 16; ++j) sumi += sc[j] * dot_ints(q + 16 * j, y[i].qs + 16 * j, 16);
        sum += fp16_to_fp32(x[i].d) * y[i].d * static_cast<float>(sumi);
    }
    return sum;
}

namespace {
// Shared by Q4_K and Q5_K (same scale/min packing, 8 sub-blocks of 32).
float dot_k4_block(const uint8_t* scales, uint16_t d, uint16_t dmin, const int* q,
                   const block_q8_K& y) {
    int sumi = 0, summ = 0;
    for (int j = 0; j < 8; ++j) {
        int sc, m;
        unpack_scale_min_k4(scales, j, &sc, &m);
        sumi += sc * dot_ints(q + 32 * j, y.qs + 32 * j, 32);
        summ += m * (y.bsums[2 * j] + y.bsums[2 * j + 1]);
    }
    return fp16_to_fp32(d) * y.d * static_cast<float>(sumi) -
           fp16_to_fp32(dmin) * y.d * static_cast<float>(summ);
}
}  // namespace

float vec_dot_q4_K_q8_K(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q4_K*>(w);
    const auto* y = static_cast<const block_q8_K*>(act);
    int q[QK_K];
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        unpack_q4_K(x[i], q);
        sum += dot_k4_block(x[i].scales, x[i].d, x[i].dmin, q, y[i]);
    }
    return sum;
}

float vec_dot_q5_K_q8_K(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q5_K*>(w);
    const auto* y = static_cast<const block_q8_K*>(act);
    int q[QK_K];
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        unpack_q5_K(x[i], q);
        sum += dot_k4_block(x[i].scales, x[i].d, x[i].dmin, q, y[i]);
    }
    return sum;
}

float vec_dot_q6_K_q8_K(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q6_K*>(w);
    const auto* y = static_cast<const block_q8_K*>(act);
    int q[QK_K];
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        unpack_q6_K(x[i], q);
        int sumi = 0;
        for (int j = 0; j < 16; ++j)
            sumi += x[i].scales[j] * dot_ints(q + 16 * j, y[i].qs + 16 * j, 16);
        sum += fp16_to_fp32(x[i].d) * y[i].d * static_cast<float>(sumi);
    }
    return sum;
}

}  // namespace duan::kernels::scalar
