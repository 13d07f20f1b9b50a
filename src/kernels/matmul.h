// Matrix products of a weight matrix with a batch of f32 activation rows.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"

namespace duan::kernels {

// A weight matrix as stored in the model file: n_rows rows of n_cols elements of `type`,
// rows `row_bytes` apart (used in place from the mmap).
struct Weight {
    DType type = DType::F32;
    int64_t n_cols = 0;  // K: the reduction dimension (GGUF ne[0])
    int64_t n_rows = 0;  // N: output features (GGUF ne[1])
    size_t row_bytes = 0;
    const void* data = nullptr;
    const void* row(int64_t r) const { return static_cast<const uint8_t*>(data) + r * row_bytes; }
};

// y[m*N + n] = dot(W.row(n), x[m*K ...]) for m < M, n < N. x: M×K f32 row-major; y: M×N f32.
// Activations are quantized to vec_dot_type(W.type) first (per row), then the work is split over
// the pool's threads by output rows.
void matmul(const Weight& W, const float* x, int64_t M, float* y, ThreadPool& pool);

}  // namespace duan::kernels
