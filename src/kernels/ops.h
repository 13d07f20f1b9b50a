// Element-wise and row operations of the transformer block, in f32. Their arithmetic follows the
// reference engine (sums of squares and softmax denominators in double, RoPE angles by repeated
// float multiplication) so that logits agree to float rounding.
#pragma once
#include <cstdint>

namespace duan::kernels {

// y = x / sqrt(mean(x²) + eps) * w  (w may be nullptr: no scale). y may alias x.
void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps);

// RoPE on one head vector of head_dim elements at position `pos`; only the first n_rot elements
// rotate. neox: pairs (i, i + n_rot/2), else (2i, 2i+1). freq_factors (optional, n_rot/2) divide
// the angle per pair (Llama 3.1).
void rope(float* x, int64_t n_rot, int32_t pos, float freq_base, float freq_scale, bool neox,
          const float* freq_factors);
// Precomputed form for many heads at one position: cos/sin tables of n_rot/2 entries.
void rope_table(float* cos_out, float* sin_out, int64_t n_rot, int32_t pos, float freq_base,
                float freq_scale, const float* freq_factors);
void rope_apply(float* x, int64_t n_rot, const float* cos_t, const float* sin_t, bool neox);

// y = silu(g) * u, element-wise (SwiGLU).
void swiglu(const float* g, const float* u, float* y, int64_t n);

// In place: x = softmax(x * scale) over n entries.
void softmax(float* x, int64_t n, float scale);

}  // namespace duan::kernels
