// Scalar kernels for the float types F32, F16 and BF16. Dots accumulate in double, as the
// reference's scalar fallbacks do (ggml_float), so these are the most accurate answers the SIMD
// variants can be compared against.
// Bit-exact float arithmetic: forbid fused multiply-add contraction in this file. g++ contracts
// a*b+c by default wherever the target has FMA (e.g. every aarch64), which rounds differently from
// the reference quantizer and breaks byte-identical output. Placed before the includes so inline
// helpers from headers are compiled (and inlined) with the same setting.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <cstring>

#include "core/fp16.h"
#include "kernels/kernel_table.h"

namespace duan::kernels::scalar {

void dequantize_f32(const void* src, float* dst, int64_t n) {
    std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

void dequantize_f16(const void* src, float* dst, int64_t n) {
    const auto* h = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(h[i]);
}

void dequantize_bf16(const void* src, float* dst, int64_t n) {
    const auto* h = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(h[i]);
}

void quantize_f32(const float* src, void* dst, int64_t n) {
    std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

void quantize_f16(const float* src, void* dst, int64_t n) {
    auto* h = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(src[i]);
}

void quantize_bf16(const float* src, void* dst, int64_t n) {
    auto* h = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_bf16(src[i]);
}

float vec_dot_f32(int64_t n, const void* w, const void* act) {
    const auto* a = static_cast<const float*>(w);
    const auto* b = static_cast<const float*>(act);
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(a[i] * b[i]);
    return static_cast<float>(sum);
}

float vec_dot_f16(int64_t n, const void* w, const void* act) {
    const auto* a = static_cast<const uint16_t*>(w);
    const auto* b = static_cast<const uint16_t*>(act);
    double sum = 0;
    for (int64_t i = 0; i < n; ++i)
        sum += static_cast<double>(fp16_to_fp32(a[i]) * fp16_to_fp32(b[i]));
    return static_cast<float>(sum);
}

float vec_dot_bf16(int64_t n, const void* w, const void* act) {
    const auto* a = static_cast<const uint16_t*>(w);
    const auto* b = static_cast<const uint16_t*>(act);
    double sum = 0;
    for (int64_t i = 0; i < n; ++i)
        sum += static_cast<double>(bf16_to_fp32(a[i]) * bf16_to_fp32(b[i]));
    return static_cast<float>(sum);
}

}  // namespace duan::kernels::scalar
