// The NEON dot products built for the dotprod level (vdotq_s32; -march=armv8.2-a+dotprod+fp16 by
// file name): arm::dotprod (neon_kernels.h). The code is shared with the other level in
// neon_dots.inl. Also the FMLAL (FEAT_FHM) F16 dot, which the table picks where the CPU has it.
// Exact float evaluation order (bit-identity with the scalar reference): no FMA
// contraction.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define DUAN_ARM_VARIANT dotprod
#include <sys/auxv.h>

#include "kernels/arm/neon_dots.inl"

namespace duan::kernels::arm {

// HWCAP_ASIMDFHM (bit 23 of AT_HWCAP, asm/hwcap.h): FMLAL/FMLAL2. Optional in ARMv8.2, present on
// every dotprod core since Cortex-A55/A75's successors (and required from ARMv8.4 with FP16).
bool cpu_has_fhm() {
    static const bool fhm = (getauxval(AT_HWCAP) & (1ul << 23)) != 0;
    return fhm;
}

namespace dotprod {

// F16 with half-precision multiplies: FMLAL multiplies f16 pairs exactly and accumulates in f32
// lanes, so the result equals vec_dot_f16's (exact products, f32 sums) up to summation order, with
// no conversion instructions. Only called where cpu_has_fhm().
__attribute__((target("+fp16fml"))) float vec_dot_f16_fhm(int64_t n, const void* w,
                                                          const void* act) {
    const auto* a = static_cast<const uint16_t*>(w);
    const auto* b = static_cast<const uint16_t*>(act);
    float32x4_t acc[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 2; ++k) {
            const float16x8_t x = vreinterpretq_f16_u16(vld1q_u16(a + i + 8 * k));
            const float16x8_t y = vreinterpretq_f16_u16(vld1q_u16(b + i + 8 * k));
            acc[2 * k] = vfmlalq_low_f16(acc[2 * k], x, y);
            acc[2 * k + 1] = vfmlalq_high_f16(acc[2 * k + 1], x, y);
        }
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
    for (; i < n; ++i) sum += fp16_to_fp32(a[i]) * fp16_to_fp32(b[i]);
    return sum;
}

}  // namespace dotprod
}  // namespace duan::kernels::arm
