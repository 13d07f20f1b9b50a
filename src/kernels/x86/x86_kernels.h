// Internal to kernels/: the x86 SIMD row kernels. The same source (x86/quant_dot_body.h) is
// compiled twice: dot_avx2.cpp for AVX2+FMA+F16C (maddubs/madd integer dots) and dot_avx512.cpp
// with AVX-512 VL + VNNI (vpdpbusd on 256-bit registers). Only declare here: the definitions need
// the ISA flags of their own file, and callers reach them through kernels_for() / matmul.
//
// Numerics: integer parts are exact; the legacy 32-element types (Q4_0..Q8_0) accumulate the
// per-block float terms in vector lanes (rounding differs from the scalar reference only in the
// order of the float sums); the K-quants reproduce the scalar reference bit for bit (per-super-
// block integer sums, then the reference's float expression in the same order). Activation
// quantizers are byte-identical to the scalar ones.
#pragma once
#include <cstdint>

#define DUAN_X86_DECLARE_KERNELS                                                                   \
    float vec_dot_f32(int64_t n, const void* w, const void* act);                                  \
    float vec_dot_f16(int64_t n, const void* w, const void* act);                                  \
    float vec_dot_bf16(int64_t n, const void* w, const void* act);                                 \
    float vec_dot_q4_0_q8_0(int64_t n, const void* w, const void* act);                            \
    float vec_dot_q4_1_q8_1(int64_t n, const void* w, const void* act);                            \
    float vec_dot_q5_0_q8_0(int64_t n, const void* w, const void* act);                            \
    float vec_dot_q5_1_q8_1(int64_t n, const void* w, const void* act);                            \
    float vec_dot_q8_0_q8_0(int64_t n, const void* w, const void* act);                            \
    float vec_dot_q2_K_q8_K(int64_t n, const void* w, const void* act);                            \
    float vec_dot_q3_K_q8_K(int64_t n, const void* w, const void* act);                            \
    float vec_dot_q4_K_q8_K(int64_t n, const void* w, const void* act);                            \
    float vec_dot_q5_K_q8_K(int64_t n, const void* w, const void* act);                            \
    float vec_dot_q6_K_q8_K(int64_t n, const void* w, const void* act);                            \
    void quantize_f16(const float* src, void* dst, int64_t n);                                     \
    void quantize_q8_0(const float* src, void* dst, int64_t n);                                    \
    void quantize_q8_1(const float* src, void* dst, int64_t n);                                    \
    /* activation forms: id = 127/amax, halves to even (scalar quantize_q8_*_act) */               \
    void quantize_q8_0_act(const float* src, void* dst, int64_t n);                                \
    void quantize_q8_1_act(const float* src, void* dst, int64_t n);                                \
    void quantize_q8_K(const float* src, void* dst, int64_t n);                                    \
    /* 4 weight rows (w, w + stride, ...) times one activation row: out[0..3]. */                  \
    void vec_dot4_q4_0_q8_0(int64_t n, const void* w, size_t stride, const void* act, float* out); \
    void vec_dot4_q5_0_q8_0(int64_t n, const void* w, size_t stride, const void* act, float* out); \
    void vec_dot4_q8_0_q8_0(int64_t n, const void* w, size_t stride, const void* act, float* out); \
    /* y[i] += a * x[i] (x in F16), multiply then add: bit-identical to the scalar loop. */        \
    void axpy_f16(int64_t n, float a, const uint16_t* x, float* y);

#if defined(__x86_64__)
#include <cstddef>
namespace duan::kernels::avx2 {
DUAN_X86_DECLARE_KERNELS
}
namespace duan::kernels::avx512vnni {
DUAN_X86_DECLARE_KERNELS
}
#endif
