// Internal to kernels/: the x86 SIMD pieces of attend() (kernels/attention.cpp) and of the other
// exp_poly users (SwiGLU, kernels/ops.cpp). One body
// (x86/attn_body.h, 256-bit AVX2+FMA+F16C intrinsics) is compiled twice, like the row kernels:
// attn_avx2.cpp and attn_avx512.cpp (AVX-512 flags; selected with AVX512_VNNI, as the row kernels).
//
// Numerics (each one tested against its scalar reference in tests/test_attention.cpp):
//   attn_qk_f16   bit-identical to the same ISA's vec_dot_f16 for every key (same lanes, same
//                 accumulators, the same horizontal-sum tree, done for 8 keys at once);
//   attn_softmax  bit-identical to kernels::softmax (exp_poly() per element, same max) except the
//                 double-precision sum, which adds in 8 lanes instead of one by one;
//   attn_pv_f16   bit-identical to the scalar loop out[d] += p[j] * v[j][d] (multiply, then add;
//                 j in order; p[j] == 0 skipped);
//   attn_pv_q8_0, attn_pv_q4_0: bit-identical to dequantize_row then that loop;
//   attn_axpy_f32 bit-identical to y[i] += a * x[i] (multiply, then add).
#pragma once
#include <cstddef>
#include <cstdint>

#define DUAN_X86_DECLARE_ATTN                                                                   \
    /* s[j] = K_j · q for n_kv keys (F16 rows of n elements, `stride` bytes apart); q in f32   \
       (the F16-rounded query, widened). n % 8 == 0. */                                         \
    void attn_qk_f16(int64_t n, const float* q, const uint8_t* k, size_t stride, int64_t n_kv,  \
                     float* s);                                                                 \
    /* x = softmax(x * scale); with round_f16 each probability is then rounded to F16. */       \
    void attn_softmax(float* x, int64_t n, float scale, bool round_f16);                        \
    /* out[0..n) = sum_j p[j] * V_j (F16 rows, `stride` bytes apart). n % 8 == 0. */            \
    void attn_pv_f16(int64_t n, const float* p, const uint8_t* v, size_t stride, int64_t n_kv,  \
                     float* out);                                                               \
    /* The same for Q8_0 / Q4_0 value rows (n % 32 == 0): each value dequantized as             \
       float(q) · d, then multiply by p[j], then add. */                                       \
    void attn_pv_q8_0(int64_t n, const float* p, const uint8_t* v, size_t stride, int64_t n_kv, \
                      float* out);                                                              \
    void attn_pv_q4_0(int64_t n, const float* p, const uint8_t* v, size_t stride, int64_t n_kv, \
                      float* out);                                                              \
    void attn_axpy_f32(int64_t n, float a, const float* x, float* y);                           \
    /* y = g / (1 + exp_poly(-g)) * u (SwiGLU), bit-identical to kernels::swiglu. */            \
    void swiglu_f32(const float* g, const float* u, float* y, int64_t n);

#if defined(__x86_64__)
namespace duan::kernels::avx2 {
DUAN_X86_DECLARE_ATTN
}
namespace duan::kernels::avx512vnni {
DUAN_X86_DECLARE_ATTN
}
#endif
