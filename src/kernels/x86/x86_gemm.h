// Internal to kernels/: the AVX-512 VNNI prefill GEMM for Q4_0 / Q5_0 / Q8_0 / Q4_K weights
// (gemm_avx512.cpp), used by matmul for M > 1 when active_isa() is AVX512_VNNI.
//
// Data layouts (both built per matmul call in thread-local scratch, never stored in the model):
//  - GemmActBlock: one Q8_0 activation block with d as float and the quants offset by +128 (u8).
//  - GemmWeightBlock: one 32-element block of 16 weight rows, interleaved so that q[k] holds
//    elements 4k..4k+3 of row r at bytes 4r..4r+3 (one zmm per k), the 16 row scales as float, and
//    -128 * sum(q) per row (the correction for the +128 activation offset).
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace duan::kernels {

struct GemmActBlock {
    float d;
    float s;  // d * sum(q) (Q8_K sources; the K-quants' min term)
    uint8_t q[32];
};

struct alignas(64) GemmWeightBlock {
    float d[16];
    float m[16];  // Q4_K: dmin * min of the sub-block (subtracted times the activation's s)
    int32_t neg_corr[16];
    int8_t q[8][64];
};

#if defined(__x86_64__)
namespace avx512vnni {
// K elements of one Q8_0 or Q8_K activation row -> K/32 GemmActBlocks.
void gemm_prepare_act(DType act_type, const void* src, int64_t K, void* dst);
// Rows [0, rows) (rows <= 16; missing rows are zero) of Q4_0, Q5_0, Q8_0 or Q4_K weights (a Q4_K
// sub-block of 32 becomes one block: scale d*sc, min coefficient dmin*m), `stride` bytes
// apart -> K/32 GemmWeightBlocks.
void gemm_pack16(DType t, const void* w, size_t stride, int64_t rows, int64_t K, void* dst);
// out[a*16 + r] = dot(weight row r, activation row a) for a < n_act: `act` holds n_act rows of
// K/32 GemmActBlocks, act_stride bytes apart.
void gemm_16xn(DType t, int64_t K, const void* packed, const void* act, size_t act_stride,
               int64_t n_act, float* out);
}  // namespace avx512vnni
#endif

}  // namespace duan::kernels
