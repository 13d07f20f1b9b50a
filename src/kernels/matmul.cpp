// matmul: y (M×N) = x (M×K) · Wᵀ with W stored as N rows of K elements. Straightforward version:
// quantize each activation row once to the weight's vec_dot type, then every thread takes a
// contiguous range of output rows (weight rows) and dots each with all M activation rows, so a
// weight row is read from memory once per call.
#include "kernels/matmul.h"

#include <vector>

#include "core/error.h"
#include "kernels/kernel_table.h"
#include "kernels/kernels.h"

namespace duan::kernels {

void matmul(const Weight& W, const float* x, int64_t M, float* y, ThreadPool& pool) {
    const int64_t K = W.n_cols, N = W.n_rows;
    if (M <= 0 || N <= 0) return;
    const auto& winfo = dtype_info(W.type);
    if (K <= 0 || K % winfo.block_size != 0)
        fail("matmul: row length ", K, " is not a multiple of the ", winfo.name, " block size ",
             winfo.block_size);
    if (W.row_bytes < dtype_row_bytes(W.type, K))
        fail("matmul: row stride ", W.row_bytes, " bytes is shorter than a ", winfo.name,
             " row of ", K, " elements");

    const DType at = vec_dot_type(W.type);
    const VecDotFn dot = active_kernels(W.type).vec_dot;
    const auto& ainfo = dtype_info(at);
    if (K % ainfo.block_size != 0)
        fail("matmul: row length ", K, " is not a multiple of the ", ainfo.name,
             " activation block size ", ainfo.block_size, " (needed by ", winfo.name, " weights)");

    // Activations in the dot type: one row of act_row_bytes per m. F32 weights use x directly.
    const size_t act_row_bytes = dtype_row_bytes(at, K);
    const uint8_t* act = reinterpret_cast<const uint8_t*>(x);
    std::vector<uint8_t> act_buf;
    if (at != DType::F32) {
        act_buf.resize(act_row_bytes * static_cast<size_t>(M));
        uint8_t* dst = act_buf.data();
        pool.parallel_for(M, [&](int64_t m0, int64_t m1) {
            for (int64_t m = m0; m < m1; ++m)
                quantize_row(at, x + m * K, dst + static_cast<size_t>(m) * act_row_bytes, K);
        });
        act = act_buf.data();
    }

    pool.parallel_for(N, [&](int64_t n0, int64_t n1) {
        for (int64_t n = n0; n < n1; ++n) {
            const void* wrow = W.row(n);
            for (int64_t m = 0; m < M; ++m)
                y[m * N + n] = dot(K, wrow, act + static_cast<size_t>(m) * act_row_bytes);
        }
    });
}

}  // namespace duan::kernels
