#include "kernels/attention.h"

#include "core/fp16.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"

namespace duan::kernels {

void attend(const float* q, int64_t head_dim, const KVView& kv, int64_t n_kv, float scale,
            float* out, AttnScratch& s) {
    const DType qt = vec_dot_type(kv.k_type);
    s.q_conv.resize(dtype_row_bytes(qt, head_dim));
    quantize_row(qt, q, s.q_conv.data(), head_dim);
    s.scores.resize(static_cast<size_t>(n_kv));
    for (int64_t j = 0; j < n_kv; ++j)
        s.scores[j] = vec_dot(kv.k_type, head_dim, kv.k + j * kv.k_stride, s.q_conv.data());
    softmax(s.scores.data(), n_kv, scale);

    for (int64_t d = 0; d < head_dim; ++d) out[d] = 0.0f;
    if (kv.v_type == DType::F16) {
        for (int64_t j = 0; j < n_kv; ++j) {
            const float p = round_fp16(s.scores[j]);
            if (p == 0.0f) continue;
            const uint16_t* vr = reinterpret_cast<const uint16_t*>(kv.v + j * kv.v_stride);
            for (int64_t d = 0; d < head_dim; ++d) out[d] += p * fp16_to_fp32(vr[d]);
        }
    } else {
        s.v_row.resize(static_cast<size_t>(head_dim));
        for (int64_t j = 0; j < n_kv; ++j) {
            const float p = s.scores[j];
            if (p == 0.0f) continue;
            dequantize_row(kv.v_type, kv.v + j * kv.v_stride, s.v_row.data(), head_dim);
            for (int64_t d = 0; d < head_dim; ++d) out[d] += p * s.v_row[d];
        }
    }
}

}  // namespace duan::kernels
