// aarch64 NEON kernels (arm/*.cpp, built only for aarch64). Three variants of the dot products,
// one per Isa level, each in its own namespace because they are the same source (neon_dots.inl)
// compiled with different -march flags:
//   arm::neon     ARMv8.0 baseline: int8 products with vmull_s8 + vpadalq_s16
//   arm::dotprod  ARMv8.2 +dotprod +fp16: vdotq_s32 (4 int8 products per lane per instruction)
//   arm::i8mm     ARMv8.6 +i8mm: the dotprod dots plus 2x2 tiles with vmmlaq_s32
// The activation quantizers are float code with no extension to gain from; one baseline version.
//
// Every integer dot sums exactly (as the scalar reference does) and then applies the block scales
// in the scalar reference's order of float operations, so the quantized dots are bit-identical to
// scalar::vec_dot_*; the quantizers are byte-identical. The float dots (F32/F16/BF16) accumulate
// in f32 vector lanes instead of the scalar's double, so they agree to ~1e-6 relative.
#pragma once
#include <cstddef>
#include <cstdint>

namespace duan::kernels::arm {

// FEAT_FHM (FMLAL: f16 products accumulated in f32), from HWCAP; not an Isa level of its own.
bool cpu_has_fhm();

// Q8_0 / Q8_1 / Q8_K activation quantizers (byte-identical to scalar::quantize_q8_*).
void quantize_q8_0(const float* src, void* dst, int64_t n);
void quantize_q8_1(const float* src, void* dst, int64_t n);
void quantize_q8_K(const float* src, void* dst, int64_t n);

#define DUAN_ARM_DECLARE_DOTS                                                                      \
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
    /* 4 weight rows (w, w + stride, ...) times one activation row: out[0..3] */                   \
    /* (same signature as the x86 vec_dot4_* that matmul's dot4_for() picks). */                   \
    void vec_dot4_q4_0_q8_0(int64_t n, const void* w, size_t stride, const void* act, float* out); \
    void vec_dot4_q8_0_q8_0(int64_t n, const void* w, size_t stride, const void* act, float* out);

namespace neon {
DUAN_ARM_DECLARE_DOTS
}
namespace dotprod {
DUAN_ARM_DECLARE_DOTS
// F16 with FMLAL (FEAT_FHM; check cpu_has_fhm() first).
float vec_dot_f16_fhm(int64_t n, const void* w, const void* act);
}  // namespace dotprod
#undef DUAN_ARM_DECLARE_DOTS

// i8mm: two weight rows (w, w + w_stride) times two activation rows (act, act + act_stride) in
// one pass: each block of each row is loaded once, and vmmlaq_s32 yields the four block sums at
// once. out[2 * m + r] = dot(weight row r, activation row m) -- activation-major, the layout of
// matmul's y (y[m * N + n], y[m * N + n + 1]) -- each bit-identical to the single-row vec_dot.
namespace i8mm {
void vec_dot_2x2_q4_0_q8_0(int64_t n, const void* w, size_t w_stride, const void* act,
                           size_t act_stride, float* out);
void vec_dot_2x2_q8_0_q8_0(int64_t n, const void* w, size_t w_stride, const void* act,
                           size_t act_stride, float* out);
}  // namespace i8mm

}  // namespace duan::kernels::arm
