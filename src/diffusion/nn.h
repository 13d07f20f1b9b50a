// The handful of f32 neural-network kernels Stable Diffusion needs, written for cache-friendly
// CPU execution: a blocked, threaded GEMM (C = A·Bᵀ, both operands row-major with K contiguous),
// conv2d as im2col (in bounded pixel chunks) + that GEMM, GroupNorm/LayerNorm, attention computed
// one query at a time (a score row of length L_k, never an L_q×L_k matrix), and the reference's
// FP16-table GELU / quick-GELU.
//
// Precision follows the reference (stable-diffusion.cpp on ggml's CPU backend):
//  - Linear weights keep the checkpoint's type; with F16 weights the activations are rounded to
//    f16 before the product ("round_in" below), products summed in f32.
//  - Conv2d weights are always stored as F16 by the reference, whatever the checkpoint type, and
//    im2col rounds the activations to f16: so every conv here rounds weights and inputs to f16.
#pragma once
#include <cstdint>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/matmul.h"

namespace duan::diffusion {

// A dense matrix, row-major [rows][cols] (embeddings).
struct Mat {
    const float* data = nullptr;  // either into the mapped checkpoint or into `own`
    std::vector<float> own;
    int64_t rows = 0, cols = 0;
};

// A weight W[n][k] (Linear: [out][in]; Conv: [out][in*kh*kw]) packed once at load for the GEMM:
// panels of 16 output columns, each stored k-major as [k][16] (zero-padded past n).
struct PackedW {
    int64_t n = 0, k = 0;
    std::vector<float> p;
    bool round_in = false;  // round activations to f16 before multiplying (F16 weight)
};
PackedW pack_weights(const float* w, int64_t n, int64_t k, bool round_in);

// A weight used in place from a GGUF map (F16 or quantized): `q.data` set, `w` empty. The product
// then goes through kernels::matmul, which quantizes the activations to the weight's dot type
// (F16 for F16 weights -- the reference's rounding -- Q8_0 / Q8_K for the quantized types).
struct Linear {
    PackedW w;
    kernels::Weight q;
    std::vector<float> b;  // empty: no bias
};

struct Conv2d {
    PackedW w;          // [out][in*k*k], values already rounded to f16
    kernels::Weight q;  // or in place from GGUF: rows [out] of in*k*k (see Linear)
    std::vector<float> b;
    int in = 0, out = 0, k = 1;
};

struct Norm {  // GroupNorm or LayerNorm affine parameters
    std::vector<float> g, b;
};

// C[M][N] = A[M][K] · Wᵀ (+ bias[N]); row strides lda / ldc.
void gemm(ThreadPool& pool, int64_t M, const float* A, int64_t lda, const PackedW& w, float* C,
          int64_t ldc, const float* bias = nullptr);

// y[T][out] = x[T][in] · Wᵀ + b
std::vector<float> linear(ThreadPool& pool, const Linear& l, const float* x, int64_t T);

// x: [C][H][W] -> [out][OH][OW]; zero padding `pad`, stride `stride`.
std::vector<float> conv2d(ThreadPool& pool, const Conv2d& c, const float* x, int H, int W,
                          int stride, int pad, int* OH = nullptr, int* OW = nullptr);

// In-place GroupNorm(groups) over x [C][HW] with eps, then optional SiLU.
void group_norm(ThreadPool& pool, float* x, int C, int64_t HW, int groups, float eps, const Norm& n,
                bool silu);
// LayerNorm over the last dim of x [T][D] (out-of-place).
std::vector<float> layer_norm(const float* x, int64_t T, int64_t D, const Norm& n, float eps);

// out[Lq][H*dh] = softmax(q·kᵀ·scale [+ causal mask]) · v per head; q [Lq][H*dh] (row stride
// ldq), k/v [Lk][H*dh] (strides ldk/ldv).
void attention(ThreadPool& pool, const float* q, int64_t ldq, const float* k, int64_t ldk,
               const float* v, int64_t ldv, float* out, int64_t Lq, int64_t Lk, int heads, int dh,
               bool causal);

void silu_inplace(float* x, int64_t n);
float gelu_f16_table(float x);        // tanh-GELU through the reference's f16 table
float quick_gelu_f16_table(float x);  // x·sigmoid(1.702x) through the f16 table

// [C][HW] <-> [HW][C]
std::vector<float> transpose(const float* x, int64_t rows, int64_t cols);

}  // namespace duan::diffusion
