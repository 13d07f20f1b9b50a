// AVX2 + FMA + F16C attention pieces (x86/attn_body.h). Built with -mavx2 -mfma -mf16c.
#define DUAN_X86_NS avx2
#include "kernels/x86/attn_body.h"
