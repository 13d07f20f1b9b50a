// Attention pieces (x86/attn_body.h) built with the AVX-512 flags (CMake, by file name); selected
// with the AVX512_VNNI row kernels so that QK stays bit-identical to their vec_dot_f16.
#define DUAN_X86_NS avx512vnni
#include "kernels/x86/attn_body.h"
