// Internal to kernels/: the AVX-512 VNNI prefill GEMMs, used by matmul for M >= 4 when
// active_isa() is AVX512_VNNI: Q4_0 / Q5_0 / Q4_K (gemm_avx512.cpp), Q8_0 (gemm_q8_0_avx512.cpp)
// and Q6_K (gemm_q6_k_avx512.cpp), the last two bit-identical to their row kernels.
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

// Q8_0 GEMM (gemm_q8_0_avx512.cpp): block b of weight rows 2p and 2p+1 side by side, so one zmm
// carries both rows' 8 reference float lanes. A panel is kGemmQ8Rows rows: K/32 × kGemmQ8Rows/2
// pairs, block-major.
constexpr int kGemmQ8Rows = 16;
struct alignas(64) GemmQ8Pair {
    int8_t q[64];          // lanes 0..7: row 2p's 32 quants, lanes 8..15: row 2p+1's
    int32_t neg_corr[16];  // -128 * (sum of the lane's 4 quants)
    float d[16];           // row 2p's scale ×8, row 2p+1's ×8
};

// Q6_K GEMM (gemm_q6_k_avx512.cpp): one 256-element super-block of 16 weight rows. q[k] holds
// elements 4k..4k+3 of row r (as q - 32, s8) at bytes 4r..4r+3; scale[j][r] row r's sub-block j
// scale; corr[r] = sum_j scale_j * (-128 * sum of sub-block j's quants) (the +128 activation
// offset); d the row scales.
struct alignas(64) GemmQ6KBlock {
    int8_t q[64][64];
    int32_t scale[16][16];
    int32_t corr[16];
    float d[16];
};

#if defined(__x86_64__)
namespace avx512vnni {
// K elements of one Q8_0 or Q8_K activation row -> K/32 GemmActBlocks.
void gemm_prepare_act(DType act_type, const void* src, int64_t K, void* dst);
// Rows [0, rows) (rows <= 16; missing rows are zero) of Q4_0, Q5_0, Q8_0 or Q4_K weights (a Q4_K
// sub-block of 32 becomes one block: scale d*sc, min coefficient dmin*m), `stride` bytes
// apart -> K/32 GemmWeightBlocks.
void gemm_pack16(DType t, const void* w, size_t stride, int64_t rows, int64_t K, void* dst);
// out[a*ldy + r] = dot(weight row r, activation row a) for a < n_act, r < rows: `act` holds
// n_act rows of K/32 GemmActBlocks, act_stride bytes apart.
void gemm_16xn(DType t, int64_t K, const void* packed, const void* act, size_t act_stride,
               int64_t n_act, int64_t rows, float* out, size_t ldy);
// Rows [0, rows) (rows <= kGemmQ8Rows; missing rows are zero) of Q8_0 weights, `stride` bytes
// apart -> a panel of K/32 × kGemmQ8Rows/2 GemmQ8Pairs.
void gemm_q8_0_pack(const void* w, size_t stride, int64_t rows, int64_t K, void* dst);
// y[a*ldy + r] = dot(weight row r, activation row a) for r < rows, a < n_act, bit-identical to
// vec_dot_q8_0_q8_0 (same lanes, same FMA per block, same horizontal sum). `act` holds n_act rows
// of K/32 GemmActBlocks (from a Q8_0 row), act_stride bytes apart.
void gemm_q8_0(int64_t K, const void* packed, const void* act, size_t act_stride, int64_t n_act,
               int64_t rows, float* y, size_t ldy);
// Rows [0, rows) (rows <= 16; missing rows are zero) of Q6_K weights -> K/256 GemmQ6KBlocks.
void gemm_q6_k_pack(const void* w, size_t stride, int64_t rows, int64_t K, void* dst);
// y[a*ldy + r] = dot(weight row r, activation row a) for r < rows, a < n_act, bit-identical to
// vec_dot_q6_K_q8_K. `act` holds n_act rows of K/32 GemmActBlocks (from Q8_K rows).
void gemm_q6_k(int64_t K, const void* packed, const void* act, size_t act_stride, int64_t n_act,
               int64_t rows, float* y, size_t ldy);
}  // namespace avx512vnni
#endif

}  // namespace duan::kernels
