// Internal to kernels/: the per-type function table that kernels.cpp dispatches through, and the
// scalar entries every table starts from. SIMD files (x86/, arm/) provide replacement entries for
// the types they speed up; the scalar ones stay the reference they are tested against.
#pragma once
#include <cstdint>
#include <cstring>

#include "core/dtype.h"
#include "kernels/isa.h"

namespace duan::kernels {

using DequantizeFn = void (*)(const void* src, float* dst, int64_t n);
using QuantizeFn = void (*)(const float* src, void* dst, int64_t n);
// One weight row (n elements) times one activation row already in the weight's vec_dot type.
using VecDotFn = float (*)(int64_t n, const void* w, const void* act);
// Weight quantizer with an optional per-column importance (imatrix; nullptr = none).
using QuantizeWeightedFn = void (*)(const float* src, void* dst, int64_t n, const float* imatrix);

struct TypeKernels {
    DequantizeFn dequantize = nullptr;
    QuantizeFn quantize = nullptr;
    QuantizeWeightedFn quantize_weighted = nullptr;
    VecDotFn vec_dot = nullptr;
    DType vec_dot_type = DType::F32;
    bool has_vec_dot_type = false;
    // Activation quantizer where it differs from `quantize` (Q8_0/Q8_1: ties to even, as the
    // reference's activation path; `quantize` keeps the reference file quantizer's roundf).
    QuantizeFn quantize_act = nullptr;
};

// The scalar table entry for t (all-null for types without kernels).
TypeKernels scalar_kernels(DType t);

// The table used for t under `isa` (scalar entries overridden by SIMD ones where available).
TypeKernels kernels_for(DType t, Isa isa);

// The entries for active_isa(), built once; all-null for unknown types. Hot loops (matmul) fetch
// the function pointer from here once instead of dispatching per call.
const TypeKernels& active_kernels(DType t);

// Round to nearest (ties to even) for |x| < 2^22 by the float magic-number trick; the reference's
// quantizers use exactly this, so byte-identical quantization needs it too.
inline int nearest_int(float x) {
    const float v = x + 12582912.0f;  // 1.5 * 2^23
    int32_t i;
    std::memcpy(&i, &v, sizeof(i));
    return (i & 0x007fffff) - 0x00400000;
}

// ---- scalar entries (scalar_float.cpp, scalar_q_legacy.cpp, scalar_q_k.cpp, quantize_ref*.cpp)
// ---
namespace scalar {
void dequantize_f32(const void* src, float* dst, int64_t n);
void dequantize_f16(const void* src, float* dst, int64_t n);
void dequantize_bf16(const void* src, float* dst, int64_t n);
void quantize_f32(const float* src, void* dst, int64_t n);
void quantize_f16(const float* src, void* dst, int64_t n);
void quantize_bf16(const float* src, void* dst, int64_t n);
float vec_dot_f32(int64_t n, const void* w, const void* act);
float vec_dot_f16(int64_t n, const void* w, const void* act);
float vec_dot_bf16(int64_t n, const void* w, const void* act);

void dequantize_q4_0(const void* src, float* dst, int64_t n);
void dequantize_q4_1(const void* src, float* dst, int64_t n);
void dequantize_q5_0(const void* src, float* dst, int64_t n);
void dequantize_q5_1(const void* src, float* dst, int64_t n);
void dequantize_q8_0(const void* src, float* dst, int64_t n);
void dequantize_q8_1(const void* src, float* dst, int64_t n);
void quantize_q8_0(const float* src, void* dst, int64_t n);
void quantize_q8_1(const float* src, void* dst, int64_t n);
void quantize_q8_0_act(const float* src, void* dst, int64_t n);
void quantize_q8_1_act(const float* src, void* dst, int64_t n);
float vec_dot_q4_0_q8_0(int64_t n, const void* w, const void* act);
float vec_dot_q4_1_q8_1(int64_t n, const void* w, const void* act);
float vec_dot_q5_0_q8_0(int64_t n, const void* w, const void* act);
float vec_dot_q5_1_q8_1(int64_t n, const void* w, const void* act);
float vec_dot_q8_0_q8_0(int64_t n, const void* w, const void* act);

void dequantize_q2_K(const void* src, float* dst, int64_t n);
void dequantize_q3_K(const void* src, float* dst, int64_t n);
void dequantize_q4_K(const void* src, float* dst, int64_t n);
void dequantize_q5_K(const void* src, float* dst, int64_t n);
void dequantize_q6_K(const void* src, float* dst, int64_t n);
void dequantize_q8_K(const void* src, float* dst, int64_t n);
void quantize_q8_K(const float* src, void* dst, int64_t n);
float vec_dot_q2_K_q8_K(int64_t n, const void* w, const void* act);
float vec_dot_q3_K_q8_K(int64_t n, const void* w, const void* act);
float vec_dot_q4_K_q8_K(int64_t n, const void* w, const void* act);
float vec_dot_q5_K_q8_K(int64_t n, const void* w, const void* act);
float vec_dot_q6_K_q8_K(int64_t n, const void* w, const void* act);

// Weight quantizers, byte-identical to the reference's quantize_row_*_ref (imatrix == nullptr) and
// to its quantize_* with quant_weights (imatrix != nullptr). src/dst is one row of n elements.
void quantize_q4_0_w(const float* src, void* dst, int64_t n, const float* imatrix);
void quantize_q4_1_w(const float* src, void* dst, int64_t n, const float* imatrix);
void quantize_q5_0_w(const float* src, void* dst, int64_t n, const float* imatrix);
void quantize_q5_1_w(const float* src, void* dst, int64_t n, const float* imatrix);
void quantize_q8_0_w(const float* src, void* dst, int64_t n, const float* imatrix);
void quantize_q2_K_w(const float* src, void* dst, int64_t n, const float* imatrix);
void quantize_q3_K_w(const float* src, void* dst, int64_t n, const float* imatrix);
void quantize_q4_K_w(const float* src, void* dst, int64_t n, const float* imatrix);
void quantize_q5_K_w(const float* src, void* dst, int64_t n, const float* imatrix);
void quantize_q6_K_w(const float* src, void* dst, int64_t n, const float* imatrix);
}  // namespace scalar

}  // namespace duan::kernels
