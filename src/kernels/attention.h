// Causal attention of one query head over a sequence's cached keys and values.
//
// The cache stores K and V rows of head_dim elements in any row type (F16 by default, as the
// reference does; Q8_0/Q4_0 for a quantized cache). The query is converted to the K type's
// vec_dot type, so scores are exactly what the reference's mul_mat computes; the probabilities are
// rounded to F16 before weighting F16 values, again as the reference does.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace duan::kernels {

struct KVView {
    const uint8_t* k = nullptr;  // row of position 0 for this kv head
    const uint8_t* v = nullptr;
    size_t k_stride = 0;  // bytes between positions
    size_t v_stride = 0;
    DType k_type = DType::F16;
    DType v_type = DType::F16;
};

// Scratch a thread needs for attend(): sized for n_kv positions and head_dim.
struct AttnScratch {
    std::vector<float> scores;    // n_kv
    std::vector<uint8_t> q_conv;  // the query in the K vec_dot type
    std::vector<float> q_f32;     // head_dim (an F16 query widened for the SIMD QK)
    std::vector<float> v_row;     // head_dim (dequantized value row)
};

// out[head_dim] = softmax(q·K[0..n_kv)^T * scale) · V[0..n_kv).
void attend(const float* q, int64_t head_dim, const KVView& kv, int64_t n_kv, float scale,
            float* out, AttnScratch& s);

}  // namespace duan::kernels
