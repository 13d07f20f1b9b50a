// AVX-512 VL + VNNI row kernels: the shared body with vpdpbusd for the u8×s8 dots. Built with the
// AVX-512 flags (CMake, by file name); only selected when the CPU has AVX512_VNNI.
#define DUAN_X86_NS avx512vnni
#define DUAN_X86_VNNI 1
#include "kernels/x86/quant_dot_body.h"
