// attend(): scores with the K type's (SIMD) vec_dot, the reference's softmax, then the weighted
// sum of values. Numerics are the reference's non-fused path exactly: the query is converted to
// the K vec_dot type, the probabilities are normalized and then rounded to F16 before weighting
// F16 values (F16 value rows are accumulated with a SIMD multiply-then-add, bit-identical to the
// scalar loop). The only buffer is one row of n_kv scores per thread (AttnScratch), so memory is
// O(n_ctx) per thread, never O(n_ctx²). An online (flash) softmax would drop even that, but it
// rounds unnormalized probabilities to F16 and so would leave the reference's numerics.
#include "kernels/attention.h"

#include "core/fp16.h"
#include "kernels/isa.h"
#include "kernels/kernel_table.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "kernels/x86/x86_kernels.h"

namespace duan::kernels {
namespace {

using AxpyF16Fn = void (*)(int64_t n, float a, const uint16_t* x, float* y);

void axpy_f16_scalar(int64_t n, float a, const uint16_t* x, float* y) {
    for (int64_t i = 0; i < n; ++i) y[i] += a * fp16_to_fp32(x[i]);
}

AxpyF16Fn pick_axpy_f16() {
#if defined(__x86_64__)
    const Isa isa = active_isa();
    if (isa_supports(isa, Isa::AVX512_VNNI)) return avx512vnni::axpy_f16;
    if (isa_supports(isa, Isa::AVX2)) return avx2::axpy_f16;
#endif
    return axpy_f16_scalar;
}

}  // namespace

void attend(const float* q, int64_t head_dim, const KVView& kv, int64_t n_kv, float scale,
            float* out, AttnScratch& s) {
    static const AxpyF16Fn axpy_f16 = pick_axpy_f16();
    const TypeKernels& kk = active_kernels(kv.k_type);
    const DType qt = vec_dot_type(kv.k_type);
    const size_t q_bytes = dtype_row_bytes(qt, head_dim);
    if (s.q_conv.size() < q_bytes) s.q_conv.resize(q_bytes);
    quantize_activation_row(qt, q, s.q_conv.data(), head_dim);
    if (s.scores.size() < static_cast<size_t>(n_kv)) s.scores.resize(static_cast<size_t>(n_kv));
    float* scores = s.scores.data();
    const VecDotFn dot = kk.vec_dot;
    for (int64_t j = 0; j < n_kv; ++j)
        scores[j] = dot(head_dim, kv.k + j * kv.k_stride, s.q_conv.data());
    softmax(scores, n_kv, scale);

    for (int64_t d = 0; d < head_dim; ++d) out[d] = 0.0f;
    if (kv.v_type == DType::F16) {
        for (int64_t j = 0; j < n_kv; ++j) {
            const float p = round_fp16(scores[j]);
            if (p == 0.0f) continue;
            axpy_f16(head_dim, p, reinterpret_cast<const uint16_t*>(kv.v + j * kv.v_stride), out);
        }
    } else {
        if (s.v_row.size() < static_cast<size_t>(head_dim))
            s.v_row.resize(static_cast<size_t>(head_dim));
        for (int64_t j = 0; j < n_kv; ++j) {
            const float p = scores[j];
            if (p == 0.0f) continue;
            dequantize_row(kv.v_type, kv.v + j * kv.v_stride, s.v_row.data(), head_dim);
            for (int64_t d = 0; d < head_dim; ++d) out[d] += p * s.v_row[d];
        }
    }
}

}  // namespace duan::kernels
