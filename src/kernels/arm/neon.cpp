// The NEON dot products built for the ARMv8.0 baseline (vmull_s8 + vpadalq_s16):
// arm::neon (neon_kernels.h). The code is shared with the other level in neon_dots.inl.
// Exact float evaluation order (bit-identity with the scalar reference): no FMA contraction.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define DUAN_ARM_VARIANT neon
#include "kernels/arm/neon_dots.inl"
