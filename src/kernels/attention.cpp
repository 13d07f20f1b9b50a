// attend(): scores, the reference's softmax, then the weighted sum of values. Numerics are the
// reference's non-fused path: the query is converted to the K vec_dot type, the probabilities are
// normalized and then rounded to F16 before weighting F16 values.
//
// Speed (decode at depth is this loop: 14 heads × 24 layers × n_kv keys per token for
// Qwen2.5-0.5B): with x86 SIMD, F16 keys go 8 at a time through attn_qk_f16 (one horizontal-sum
// tree for 8 keys, bit-identical to vec_dot_f16 per key); Q4_0/Q5_0/Q8_0 keys 4 at a time through
// the matmul's 4-row kernels (bit-identical to their vec_dot); the softmax is vectorized (exp_poly
// in 8 lanes, bit-identical to the scalar exp_poly; only the double sum adds in a different order);
// F16 values are summed with the output row in registers (bit-identical to the scalar loop),
// Q8_0/Q4_0 values likewise, dequantized in registers (bit-identical to dequantize_row and the
// scalar loop). Other ISAs and shapes (head_dim % 8 != 0) take the scalar path, which is the
// reference for all of them.
//
// The only buffer is one row of n_kv scores per thread (AttnScratch), so memory is O(n_ctx) per
// thread, never O(n_ctx²). An online (flash) softmax would drop even that, but it rounds
// unnormalized probabilities to F16 and so would leave the reference's numerics.
#include "kernels/attention.h"

#include "core/fp16.h"
#include "kernels/isa.h"
#include "kernels/kernel_table.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "kernels/x86/x86_attn.h"
#include "kernels/x86/x86_kernels.h"

namespace duan::kernels {
namespace {

using Dot4Fn = void (*)(int64_t n, const void* w, size_t stride, const void* act, float* out);

struct AttnSimd {
    void (*qk_f16)(int64_t, const float*, const uint8_t*, size_t, int64_t, float*) = nullptr;
    void (*softmax)(float*, int64_t, float, bool) = nullptr;
    void (*pv_f16)(int64_t, const float*, const uint8_t*, size_t, int64_t, float*) = nullptr;
    void (*axpy_f32)(int64_t, float, const float*, float*) = nullptr;
    void (*pv_q8_0)(int64_t, const float*, const uint8_t*, size_t, int64_t, float*) = nullptr;
    void (*pv_q4_0)(int64_t, const float*, const uint8_t*, size_t, int64_t, float*) = nullptr;
    Dot4Fn dot4_q4_0 = nullptr, dot4_q5_0 = nullptr, dot4_q8_0 = nullptr;
};

AttnSimd pick_simd() {
    AttnSimd s;
#if defined(__x86_64__)
    const Isa isa = active_isa();
    // The same namespace the row kernels come from (kernels_for), so QK matches their vec_dot.
#define DUAN_ATTN_FROM(ns)                \
    s.qk_f16 = ns::attn_qk_f16;           \
    s.softmax = ns::attn_softmax;         \
    s.pv_f16 = ns::attn_pv_f16;           \
    s.axpy_f32 = ns::attn_axpy_f32;       \
    s.pv_q8_0 = ns::attn_pv_q8_0;         \
    s.pv_q4_0 = ns::attn_pv_q4_0;         \
    s.dot4_q4_0 = ns::vec_dot4_q4_0_q8_0; \
    s.dot4_q5_0 = ns::vec_dot4_q5_0_q8_0; \
    s.dot4_q8_0 = ns::vec_dot4_q8_0_q8_0;
    if (isa_supports(isa, Isa::AVX512_VNNI)) {
        DUAN_ATTN_FROM(avx512vnni)
    } else if (isa_supports(isa, Isa::AVX2)) {
        DUAN_ATTN_FROM(avx2)
    }
#undef DUAN_ATTN_FROM
#endif
    return s;
}

const AttnSimd& simd() {
    static const AttnSimd s = pick_simd();
    return s;
}

Dot4Fn dot4_for(const AttnSimd& s, DType t) {
    switch (t) {
        case DType::Q4_0:
            return s.dot4_q4_0;
        case DType::Q5_0:
            return s.dot4_q5_0;
        case DType::Q8_0:
            return s.dot4_q8_0;
        default:
            return nullptr;
    }
}

}  // namespace

void attend(const float* q, int64_t head_dim, const KVView& kv, int64_t n_kv, float scale,
            float* out, AttnScratch& s) {
    const AttnSimd& simd_k = simd();
    const TypeKernels& kk = active_kernels(kv.k_type);
    const DType qt = vec_dot_type(kv.k_type);
    const size_t q_bytes = dtype_row_bytes(qt, head_dim);
    if (s.q_conv.size() < q_bytes) s.q_conv.resize(q_bytes);
    quantize_activation_row(qt, q, s.q_conv.data(), head_dim);
    if (s.scores.size() < static_cast<size_t>(n_kv)) s.scores.resize(static_cast<size_t>(n_kv));
    float* scores = s.scores.data();
    const bool vec8 = head_dim % 8 == 0;

    // --- scores: K_j · q
    int64_t j = 0;
    if (kv.k_type == DType::F16 && simd_k.qk_f16 && vec8) {
        // The F16-rounded query widened once (exact); then 8 keys per step.
        if (s.q_f32.size() < static_cast<size_t>(head_dim))
            s.q_f32.resize(static_cast<size_t>(head_dim));
        const auto* qh = reinterpret_cast<const uint16_t*>(s.q_conv.data());
        for (int64_t d = 0; d < head_dim; ++d) s.q_f32[d] = fp16_to_fp32(qh[d]);
        simd_k.qk_f16(head_dim, s.q_f32.data(), kv.k, kv.k_stride, n_kv, scores);
        j = n_kv;
    } else if (const Dot4Fn dot4 = dot4_for(simd_k, kv.k_type)) {
        for (; j + 4 <= n_kv; j += 4)
            dot4(head_dim, kv.k + j * kv.k_stride, kv.k_stride, s.q_conv.data(), scores + j);
    }
    for (; j < n_kv; ++j) scores[j] = kk.vec_dot(head_dim, kv.k + j * kv.k_stride, s.q_conv.data());

    // --- probabilities (rounded to F16 for F16 values)
    const bool round_p = kv.v_type == DType::F16;
    if (simd_k.softmax) {
        simd_k.softmax(scores, n_kv, scale, round_p);
    } else {
        softmax(scores, n_kv, scale);
        if (round_p)
            for (int64_t i = 0; i < n_kv; ++i) scores[i] = round_fp16(scores[i]);
    }

    // --- out = sum_j p_j V_j
    if (kv.v_type == DType::F16 && simd_k.pv_f16 && vec8) {
        simd_k.pv_f16(head_dim, scores, kv.v, kv.v_stride, n_kv, out);
        return;
    }
    if (kv.v_type == DType::Q8_0 && simd_k.pv_q8_0) {  // head_dim % 32 == 0 for a Q8_0 row
        simd_k.pv_q8_0(head_dim, scores, kv.v, kv.v_stride, n_kv, out);
        return;
    }
    if (kv.v_type == DType::Q4_0 && simd_k.pv_q4_0) {
        simd_k.pv_q4_0(head_dim, scores, kv.v, kv.v_stride, n_kv, out);
        return;
    }
    for (int64_t d = 0; d < head_dim; ++d) out[d] = 0.0f;
    if (kv.v_type == DType::F16) {
        for (j = 0; j < n_kv; ++j) {
            const float p = scores[j];
            if (p == 0.0f) continue;
            const auto* v = reinterpret_cast<const uint16_t*>(kv.v + j * kv.v_stride);
            for (int64_t d = 0; d < head_dim; ++d) out[d] += p * fp16_to_fp32(v[d]);
        }
        return;
    }
    if (s.v_row.size() < static_cast<size_t>(head_dim))
        s.v_row.resize(static_cast<size_t>(head_dim));
    for (j = 0; j < n_kv; ++j) {
        const float p = scores[j];
        if (p == 0.0f) continue;
        dequantize_row(kv.v_type, kv.v + j * kv.v_stride, s.v_row.data(), head_dim);
        if (simd_k.axpy_f32) {
            simd_k.axpy_f32(head_dim, p, s.v_row.data(), out);
        } else {
            for (int64_t d = 0; d < head_dim; ++d) out[d] += p * s.v_row[d];
        }
    }
}

}  // namespace duan::kernels
