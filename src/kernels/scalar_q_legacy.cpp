// Scalar kernels for the 32-element "legacy" types: dequantize Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1;
// quantize activations to Q8_0 / Q8_1; and the dots Q4_0·Q8_0, Q4_1·Q8_1, Q5_0·Q8_0, Q5_1·Q8_1,
// Q8_0·Q8_0. Each dot sums integer products inside a block, then scales once per block by
// d_w * d_act (plus m_w * s_act for the types with a min), exactly as the reference does.
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

// Element j's fifth bit (j < 32) from the little-endian qh word.
inline int high_bit(uint32_t qh, int j) {
    return static_cast<int>((qh >> j) & 1u) << 4;
}

inline uint32_t load_qh(const uint8_t* qh) {
    uint32_t v;
    std::memcpy(&v, qh, 4);
    return v;
}

// Block-wise Q8 quantization shared by Q8_0 and Q8_1: d = amax / 127, q = round(x / d).
// Returns the sum of the quants (needed by Q8_1). Weights round halves away from zero (roundf), as
// the reference quantizer writes files; activations round halves to even with id = 127/amax, as the
// reference's x86 activation quantizer does (the reference's goldens come from x86) — a tie is rare, but one flipped quant in a K/V row
// moves every later position's logits.
template <bool kTiesEven = false>
inline int quantize_block_q8(const float* x, int8_t* qs, float* d_out) {
    float amax = 0.0f;
    for (int j = 0; j < QK8_0; ++j) {
        const float ax = std::fabs(x[j]);
        amax = amax > ax ? amax : ax;
    }
    const float d = amax / 127.0f;
    // The activation path computes the inverse scale as 127/amax (not 1/d): one ulp apart, and
    // that ulp decides a rounding now and then.
    const float id = kTiesEven ? (amax != 0.0f ? 127.0f / amax : 0.0f) : (d != 0.0f ? 1.0f / d : 0.0f);
    int sum = 0;
    for (int j = 0; j < QK8_0; ++j) {
        qs[j] = static_cast<int8_t>(kTiesEven ? std::nearbyint(x[j] * id) : std::roundf(x[j] * id));
        sum += qs[j];
    }
    *d_out = d;
    return sum;
}

}  // namespace

// ---- dequantize
// ------------------------------------------------------------------------------------

void dequantize_q4_0(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const block_q4_0*>(src);
    for (int64_t i = 0; i < n / QK4_0; ++i, dst += QK4_0) {
        const float d = fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK4_0 / 2; ++j) {
            dst[j] = static_cast<float>((b[i].qs[j] & 0x0F) - 8) * d;
            dst[j + QK4_0 / 2] = static_cast<float>((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void dequantize_q4_1(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const block_q4_1*>(src);
    for (int64_t i = 0; i < n / QK4_1; ++i, dst += QK4_1) {
        const float d = fp16_to_fp32(b[i].d);
        const float m = fp16_to_fp32(b[i].m);
        for (int j = 0; j < QK4_1 / 2; ++j) {
            dst[j] = static_cast<float>(b[i].qs[j] & 0x0F) * d + m;
            dst[j + QK4_1 / 2] = static_cast<float>(b[i].qs[j] >> 4) * d + m;
        }
    }
}

void dequantize_q5_0(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const block_q5_0*>(src);
    for (int64_t i = 0; i < n / QK5_0; ++i, dst += QK5_0) {
        const float d = fp16_to_fp32(b[i].d);
        const uint32_t qh = load_qh(b[i].qh);
        for (int j = 0; j < QK5_0 / 2; ++j) {
            const int q0 = ((b[i].qs[j] & 0x0F) | high_bit(qh, j)) - 16;
            const int q1 = ((b[i].qs[j] >> 4) | high_bit(qh, j + 16)) - 16;
            dst[j] = static_cast<float>(q0) * d;
            dst[j + QK5_0 / 2] = static_cast<float>(q1) * d;
        }
    }
}

void dequantize_q5_1(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const block_q5_1*>(src);
    for (int64_t i = 0; i < n / QK5_1; ++i, dst += QK5_1) {
        const float d = fp16_to_fp32(b[i].d);
        const float m = fp16_to_fp32(b[i].m);
        const uint32_t qh = load_qh(b[i].qh);
        for (int j = 0; j < QK5_1 / 2; ++j) {
            const int q0 = (b[i].qs[j] & 0x0F) | high_bit(qh, j);
            const int q1 = (b[i].qs[j] >> 4) | high_bit(qh, j + 16);
            dst[j] = static_cast<float>(q0) * d + m;
            dst[j + QK5_1 / 2] = static_cast<float>(q1) * d + m;
        }
    }
}

void dequantize_q8_0(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const block_q8_0*>(src);
    for (int64_t i = 0; i < n / QK8_0; ++i, dst += QK8_0) {
        const float d = fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK8_0; ++j) dst[j] = static_cast<float>(b[i].qs[j]) * d;
    }
}

void dequantize_q8_1(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const block_q8_1*>(src);
    for (int64_t i = 0; i < n / QK8_1; ++i, dst += QK8_1) {
        const float d = fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK8_1; ++j) dst[j] = static_cast<float>(b[i].qs[j]) * d;
    }
}

// ---- activation quantizers ---------------------------------------------------------------------

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
        b[i].s = fp32_to_fp16(static_cast<float>(sum) * d);  // from the f32 d, as the reference
    }
}

void quantize_q8_0_act(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<block_q8_0*>(dst);
    for (int64_t i = 0; i < n / QK8_0; ++i, src += QK8_0) {
        float d;
        quantize_block_q8<true>(src, b[i].qs, &d);
        b[i].d = fp32_to_fp16(d);
    }
}

void quantize_q8_1_act(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<block_q8_1*>(dst);
    for (int64_t i = 0; i < n / QK8_1; ++i, src += QK8_1) {
        float d;
        const int sum = quantize_block_q8<true>(src, b[i].qs, &d);
        b[i].d = fp32_to_fp16(d);
        b[i].s = fp32_to_fp16(static_cast<float>(sum) * d);
    }
}

// Q8_0 weights are quantized exactly like activations; the imatrix does not change them.
void quantize_q8_0_w(const float* src, void* dst, int64_t n, const float* /*imatrix*/) {
    quantize_q8_0(src, dst, n);
}

// ---- dots
// ------------------------------------------------------------------------------------------

float vec_dot_q4_0_q8_0(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q4_0*>(w);
    const auto* y = static_cast<const block_q8_0*>(act);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; ++i) {
        int sumi = 0;
        for (int j = 0; j < QK8_0 / 2; ++j) {
            sumi += ((x[i].qs[j] & 0x0F) - 8) * y[i].qs[j];
            sumi += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + QK8_0 / 2];
        }
        sum += static_cast<float>(sumi) * fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d);
    }
    return sum;
}

float vec_dot_q4_1_q8_1(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q4_1*>(w);
    const auto* y = static_cast<const block_q8_1*>(act);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_1; ++i) {
        int sumi = 0;
        for (int j = 0; j < QK8_1 / 2; ++j) {
            sumi += (x[i].qs[j] & 0x0F) * y[i].qs[j];
            sumi += (x[i].qs[j] >> 4) * y[i].qs[j + QK8_1 / 2];
        }
        // sum_j (d q_j + m) * a_j = d*da*sumi + m * (da * sum_j qa_j) = ... + m * s
        sum += fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d) * static_cast<float>(sumi) +
               fp16_to_fp32(x[i].m) * fp16_to_fp32(y[i].s);
    }
    return sum;
}

float vec_dot_q5_0_q8_0(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q5_0*>(w);
    const auto* y = static_cast<const block_q8_0*>(act);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; ++i) {
        const uint32_t qh = load_qh(x[i].qh);
        int sumi = 0;
        for (int j = 0; j < QK8_0 / 2; ++j) {
            const int q0 = ((x[i].qs[j] & 0x0F) | high_bit(qh, j)) - 16;
            const int q1 = ((x[i].qs[j] >> 4) | high_bit(qh, j + 16)) - 16;
            sumi += q0 * y[i].qs[j] + q1 * y[i].qs[j + QK8_0 / 2];
        }
        sum += fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d) * static_cast<float>(sumi);
    }
    return sum;
}

float vec_dot_q5_1_q8_1(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q5_1*>(w);
    const auto* y = static_cast<const block_q8_1*>(act);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_1; ++i) {
        const uint32_t qh = load_qh(x[i].qh);
        int sumi = 0;
        for (int j = 0; j < QK8_1 / 2; ++j) {
            const int q0 = (x[i].qs[j] & 0x0F) | high_bit(qh, j);
            const int q1 = (x[i].qs[j] >> 4) | high_bit(qh, j + 16);
            sumi += q0 * y[i].qs[j] + q1 * y[i].qs[j + QK8_1 / 2];
        }
        sum += fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d) * static_cast<float>(sumi) +
               fp16_to_fp32(x[i].m) * fp16_to_fp32(y[i].s);
    }
    return sum;
}

float vec_dot_q8_0_q8_0(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q8_0*>(w);
    const auto* y = static_cast<const block_q8_0*>(act);
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t i = 0; i < n / QK8_0; ++i) {
        const float d = fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d);
        for (int l = 0; l < 8; ++l) {
            int s = 0;
            for (int k = 0; k < 4; ++k) s += x[i].qs[4 * l + k] * y[i].qs[4 * l + k];
            acc[l] = std::fma(d, static_cast<float>(s), acc[l]);
        }
    }
    float r[4];
    for (int l = 0; l < 4; ++l) r[l] = acc[4 + l] + acc[l];
    r[0] = r[0] + r[2];
    r[1] = r[1] + r[3];
    return r[0] + r[1];
}

}  // namespace duan::kernels::scalar
