// Row kernels for every tensor type: dequantize, quantize, and the dot product of a weight row with
// an activation row. As in the reference engine, activations are first quantized to the weight
// type's "vec_dot type" (Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for the K-quants, F16
// for F16, BF16 for BF16, F32 for F32) so the inner loop is an integer (or half) dot product. This
// is what makes our logits land near-exactly on the reference's.
//
// Each entry point dispatches once (at first use) to the best ISA the CPU has; see isa.h. The
// scalar versions in scalar_*.cpp are the reference every SIMD variant is tested against.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace duan::kernels {

// The type activations are converted to before vec_dot with a weight row of type `weight`.
DType vec_dot_type(DType weight);

// True for types that have dequantize_row (every type a model may store).
bool can_dequantize(DType t);
// True for types that have quantize_row: F32, F16, BF16, Q8_0, Q8_1, Q8_K, and each weight type
// with a reference quantizer.
bool can_quantize(DType t);

// n must be a multiple of the type's block size.
void dequantize_row(DType t, const void* src, float* dst, int64_t n);
void quantize_row(DType t, const float* src, void* dst, int64_t n);
// Quantizes activations (matmul inputs, attention queries, K/V cache rows) the way the reference's
// activation path does: as quantize_row, except Q8_0/Q8_1 round halves to even.
void quantize_activation_row(DType t, const float* src, void* dst, int64_t n);

// Weight quantization with an optional importance matrix (one weight per column, n of them; the
// reference's quant_weights). imatrix == nullptr gives exactly quantize_row's bytes. For the
// K-quants and Q4_0..Q5_1 with an imatrix, the result matches the reference's importance-weighted
// quantizers byte for byte. src/dst is ONE row (the legacy types use the whole row's mean square).
void quantize_row_weighted(DType t, const float* src, void* dst, int64_t n, const float* imatrix);

// Dot product of one weight row (type wt) with one activation row already in vec_dot_type(wt).
// n must be a multiple of both block sizes; not checked here (hot path) — matmul checks shapes.
float vec_dot(DType wt, int64_t n, const void* w, const void* act);

}  // namespace duan::kernels
