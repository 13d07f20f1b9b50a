// AVX2 + FMA + F16C row kernels (the x86 baseline SIMD level): the shared body with maddubs/madd
// integer dots. Built with -mavx2 -mfma -mf16c (CMake, by file name).
#define DUAN_X86_NS avx2
#define DUAN_X86_VNNI 0
#include "kernels/x86/quant_dot_body.h"
