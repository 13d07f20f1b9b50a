// matmul: y (M×N) = x (M×K) · Wᵀ with W stored as N rows of K elements.
//
// 1. Each activation row is quantized once to the weight's vec_dot type, into a buffer owned by
//    the calling thread and reused across calls (no per-call allocation once it has grown).
// 2. The output rows (weight rows) are split into contiguous chunks that are multiples of 4
//    (GEMM: of 16), about four per thread, claimed by whichever thread is free (a preempted
//    thread stalls only its chunk); each weight row is read from memory once per call. Tiny
//    products (the stories260K model, a 128-row K projection at decode) run on the calling thread
//    alone: waking the pool costs more than the work.
// 3. Decode (M = 1) is bandwidth-bound: where a 4-row kernel exists (x86 Q4_0/Q5_0/Q8_0), four
//    weight rows stream against one activation row per inner loop, sharing its loads, and the
//    kernel prefetches the next 4 rows itself.
// 4. Prefill (M >= 4) with AVX-512 VNNI and Q4_0/Q5_0/Q4_K/Q8_0/Q6_K weights: a packed GEMM.
//    Each thread repacks 16 weight rows at a time into a panel (L2-resident, per call, never
//    stored: no extra resident memory) and runs it against every activation row, writing its 16
//    output columns straight into y. Q4_0/Q5_0/Q4_K: x86/gemm_avx512.cpp (8 activation rows at a
//    time in registers). Q8_0 (x86/gemm_q8_0_avx512.cpp) and Q6_K (x86/gemm_q6_k_avx512.cpp)
//    keep the reference's summation order and are bit-identical to their row kernels.
//    Other types: activation rows in ~128 KiB tiles (L2) against groups of weight rows (L1).
// Decode and the row-dot prefill compute each element the same way whatever M or the thread
// count; the Q4_0/Q5_0/Q4_K GEMM differs from them only in float rounding (integer block sums are
// exact), the Q8_0 and Q6_K GEMMs not at all.
#include "kernels/matmul.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "kernels/kernel_table.h"
#include "kernels/kernels.h"
#include "kernels/x86/x86_gemm.h"
#include "kernels/x86/x86_kernels.h"
#if defined(__aarch64__)
#include "kernels/arm/neon_kernels.h"
#endif

namespace duan::kernels {
namespace {

// Below this many multiply-adds (N*K*M) the pool is not woken.
constexpr double kMinThreadedWork = 1 << 17;
// Activation rows per prefill tile: about this many bytes of them.
constexpr size_t kActTileBytes = 128 * 1024;

using Dot4Fn = void (*)(int64_t n, const void* w, size_t stride, const void* act, float* out);

// The 4-row kernel for W's type under the active ISA, or nullptr. Must agree exactly with the
// table's vec_dot (it does: same per-row operation order).
Dot4Fn dot4_for(DType t) {
#if defined(__x86_64__)
    const Isa isa = active_isa();
    if (!isa_supports(isa, Isa::AVX2)) return nullptr;
    const bool vnni = isa_supports(isa, Isa::AVX512_VNNI);
    if (t == DType::Q4_0) return vnni ? avx512vnni::vec_dot4_q4_0_q8_0 : avx2::vec_dot4_q4_0_q8_0;
    if (t == DType::Q5_0) return vnni ? avx512vnni::vec_dot4_q5_0_q8_0 : avx2::vec_dot4_q5_0_q8_0;
    if (t == DType::Q8_0) return vnni ? avx512vnni::vec_dot4_q8_0_q8_0 : avx2::vec_dot4_q8_0_q8_0;
#elif defined(__aarch64__)
    // Same per-row order as the table's vec_dot: the dotprod build on dotprod and i8mm CPUs,
    // the vmull_s8 one on plain NEON (tests/test_simd_arm.cpp: FourRowDotsAreBitIdentical).
    const Isa isa = active_isa();
    if (!isa_supports(isa, Isa::NEON)) return nullptr;
    const bool dp = isa_supports(isa, Isa::NEON_DOTPROD);
    if (t == DType::Q4_0)
        return dp ? arm::dotprod::vec_dot4_q4_0_q8_0 : arm::neon::vec_dot4_q4_0_q8_0;
    if (t == DType::Q8_0)
        return dp ? arm::dotprod::vec_dot4_q8_0_q8_0 : arm::neon::vec_dot4_q8_0_q8_0;
#else
    (void)t;
#endif
    return nullptr;
}

using Tile2x2Fn = void (*)(int64_t n, const void* w, size_t w_stride, const void* act,
                           size_t act_stride, float* out);

// The 2x2 row-tile kernel (two weight rows x two activation rows; i8mm's SMMLA) for W's type
// under the active ISA, or nullptr. Each of its four outputs is bit-identical to the table's
// vec_dot (tests/test_simd_arm.cpp: I8mmTilesAreBitIdentical).
Tile2x2Fn tile2x2_for(DType t) {
#if defined(__aarch64__)
    if (!isa_supports(active_isa(), Isa::NEON_I8MM)) return nullptr;
    if (t == DType::Q4_0) return arm::i8mm::vec_dot_2x2_q4_0_q8_0;
    if (t == DType::Q8_0) return arm::i8mm::vec_dot_2x2_q8_0_q8_0;
#else
    (void)t;
#endif
    return nullptr;
}

std::vector<uint8_t>& act_buffer() {
    thread_local std::vector<uint8_t> buf;
    return buf;
}

// Scratch for the packed GEMM (calling thread: activations; each worker: its weight panel).
std::vector<uint8_t>& gemm_act_buffer() {
    thread_local std::vector<uint8_t> buf;
    return buf;
}
std::vector<uint8_t>& gemm_q8_panel_buffer() {
    thread_local std::vector<uint8_t> buf;
    return buf;
}
std::vector<GemmWeightBlock>& gemm_panel_buffer() {
    thread_local std::vector<GemmWeightBlock> buf;
    return buf;
}

bool use_gemm(DType t, int64_t M) {
#if defined(__x86_64__)
    return M >= 4 &&
           (t == DType::Q4_0 || t == DType::Q5_0 || t == DType::Q4_K || t == DType::Q8_0 ||
            t == DType::Q6_K) &&
           isa_supports(active_isa(), Isa::AVX512_VNNI);
#else
    (void)t;
    (void)M;
    return false;
#endif
}

#if defined(__x86_64__)
// Prefill with the packed VNNI GEMM. Each activation row is quantized to the dot type (Q8_0 or
// Q8_K, `quant`) into one row of per-thread scratch and converted to GemmActBlocks at once, so
// only the GEMM layout of the M rows is held. Each thread then takes whole 16-row panels; for
// each panel, packs it once, then runs it against every activation row.
void matmul_gemm(const Weight& W, const float* x, QuantizeFn quant, int64_t M, float* y,
                 ThreadPool& pool, bool threaded) {
    const int64_t K = W.n_cols, N = W.n_rows, nb = K / 32;
    const DType at = vec_dot_type(W.type);
    const size_t act_row_bytes = dtype_row_bytes(at, K);
    const size_t gact_stride = static_cast<size_t>(nb) * sizeof(GemmActBlock);
    std::vector<uint8_t>& gbuf = gemm_act_buffer();
    if (gbuf.size() < gact_stride * static_cast<size_t>(M))
        gbuf.resize(gact_stride * static_cast<size_t>(M));
    uint8_t* gact = gbuf.data();
    auto prepare_rows = [&](int64_t m0, int64_t m1) {
        std::vector<uint8_t>& row = act_buffer();  // this thread's
        if (row.size() < act_row_bytes) row.resize(act_row_bytes);
        for (int64_t m = m0; m < m1; ++m) {
            quant(x + m * K, row.data(), K);
            avx512vnni::gemm_prepare_act(at, row.data(), K,
                                         gact + static_cast<size_t>(m) * gact_stride);
        }
    };
    if (threaded)
        pool.parallel_for(M, prepare_rows);
    else
        prepare_rows(0, M);

    const int64_t n_panels = (N + 15) / 16;
    if (W.type == DType::Q8_0) {
        // Bit-identical to the row kernels (x86_gemm.h): weight pairs × activation rows, the
        // outputs written straight into y.
        static_assert(kGemmQ8Rows == 16);
        auto q8_panels = [&](int64_t p0, int64_t p1) {
            std::vector<uint8_t>& buf = gemm_q8_panel_buffer();
            const size_t bytes = static_cast<size_t>(nb) * (kGemmQ8Rows / 2) * sizeof(GemmQ8Pair);
            if (buf.size() < bytes + 64) buf.resize(bytes + 64);
            void* panel = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) &
                                                  ~static_cast<uintptr_t>(63));
            for (int64_t p = p0; p < p1; ++p) {
                const int64_t n0 = p * 16, rows = std::min<int64_t>(16, N - n0);
                avx512vnni::gemm_q8_0_pack(W.row(n0), W.row_bytes, rows, K, panel);
                avx512vnni::gemm_q8_0(K, panel, gact, gact_stride, M, rows, y + n0,
                                      static_cast<size_t>(N));
            }
        };
        if (!threaded)
            q8_panels(0, n_panels);
        else
            pool.parallel_for(n_panels, q8_panels);
        return;
    }
    if (W.type == DType::Q6_K) {
        // Bit-identical to the row kernels (x86_gemm.h): exact super-block integer sums.
        auto q6_panels = [&](int64_t p0, int64_t p1) {
            std::vector<uint8_t>& buf = gemm_q8_panel_buffer();
            const size_t bytes = static_cast<size_t>(K / 256) * sizeof(GemmQ6KBlock);
            if (buf.size() < bytes + 64) buf.resize(bytes + 64);
            void* panel = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) &
                                                  ~static_cast<uintptr_t>(63));
            for (int64_t p = p0; p < p1; ++p) {
                const int64_t n0 = p * 16, rows = std::min<int64_t>(16, N - n0);
                avx512vnni::gemm_q6_k_pack(W.row(n0), W.row_bytes, rows, K, panel);
                avx512vnni::gemm_q6_k(K, panel, gact, gact_stride, M, rows, y + n0,
                                      static_cast<size_t>(N));
            }
        };
        if (!threaded)
            q6_panels(0, n_panels);
        else
            pool.parallel_for(n_panels, q6_panels);
        return;
    }
    auto panels = [&](int64_t p0, int64_t p1) {
        std::vector<GemmWeightBlock>& panel = gemm_panel_buffer();
        if (panel.size() < static_cast<size_t>(nb)) panel.resize(static_cast<size_t>(nb));
        for (int64_t p = p0; p < p1; ++p) {
            const int64_t n0 = p * 16, rows = std::min<int64_t>(16, N - n0);
            avx512vnni::gemm_pack16(W.type, W.row(n0), W.row_bytes, rows, K, panel.data());
            avx512vnni::gemm_16xn(W.type, K, panel.data(), gact, gact_stride, M, rows, y + n0,
                                  static_cast<size_t>(N));
        }
    };
    if (!threaded) {
        panels(0, n_panels);
        return;
    }
    pool.parallel_for(n_panels, panels);
}
#endif

}  // namespace

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

    const TypeKernels& wk = active_kernels(W.type);
    const DType at = vec_dot_type(W.type);
    const VecDotFn dot = wk.vec_dot;
    const auto& ainfo = dtype_info(at);
    if (K % ainfo.block_size != 0)
        fail("matmul: row length ", K, " is not a multiple of the ", ainfo.name,
             " activation block size ", ainfo.block_size, " (needed by ", winfo.name, " weights)");

    const double work = static_cast<double>(N) * static_cast<double>(K) * static_cast<double>(M);
    const bool threaded = pool.size() > 1 && work >= kMinThreadedWork;

    const QuantizeFn quant = active_kernels(at).quantize_act ? active_kernels(at).quantize_act
                                                             : active_kernels(at).quantize;
#if defined(__x86_64__)
    if (use_gemm(W.type, M)) {
        matmul_gemm(W, x, quant, M, y, pool, threaded);
        return;
    }
#endif

    // Activations in the dot type: one row of act_row_bytes per m. F32 weights use x directly.
    const size_t act_row_bytes = dtype_row_bytes(at, K);
    const uint8_t* act = reinterpret_cast<const uint8_t*>(x);
    if (at != DType::F32) {
        std::vector<uint8_t>& buf = act_buffer();
        if (buf.size() < act_row_bytes * static_cast<size_t>(M))
            buf.resize(act_row_bytes * static_cast<size_t>(M));
        uint8_t* dst = buf.data();
        auto quantize_rows = [&](int64_t m0, int64_t m1) {
            for (int64_t m = m0; m < m1; ++m)
                quant(x + m * K, dst + static_cast<size_t>(m) * act_row_bytes, K);
        };
        if (threaded && M >= 4)
            pool.parallel_for(M, quantize_rows);
        else
            quantize_rows(0, M);
        act = dst;
    }

    const Dot4Fn dot4 = dot4_for(W.type);
    const Tile2x2Fn tile2 = M >= 2 ? tile2x2_for(W.type) : nullptr;
    const int64_t m_tile = std::max<int64_t>(
        1, std::min<int64_t>(M, static_cast<int64_t>(kActTileBytes / act_row_bytes)));

    // Output rows [n0, n1) for every activation row.
    auto rows = [&](int64_t n0, int64_t n1) {
        for (int64_t m0 = 0; m0 < M; m0 += m_tile) {
            const int64_t m1 = std::min(M, m0 + m_tile);
            int64_t n = n0;
            if (tile2 && m1 - m0 >= 2) {
                // 2 weight rows x 2 activation rows per call (i8mm): r = [m][n], [m][n+1],
                // [m+1][n], [m+1][n+1]; an odd last activation row takes the single-row dot.
                for (; n + 2 <= n1; n += 2) {
                    const void* w = W.row(n);
                    int64_t m = m0;
                    for (; m + 2 <= m1; m += 2) {
                        float r[4];
                        tile2(K, w, W.row_bytes, act + static_cast<size_t>(m) * act_row_bytes,
                              act_row_bytes, r);
                        y[m * N + n] = r[0];
                        y[m * N + n + 1] = r[1];
                        y[(m + 1) * N + n] = r[2];
                        y[(m + 1) * N + n + 1] = r[3];
                    }
                    for (; m < m1; ++m) {
                        const uint8_t* a = act + static_cast<size_t>(m) * act_row_bytes;
                        y[m * N + n] = dot(K, w, a);
                        y[m * N + n + 1] = dot(K, W.row(n + 1), a);
                    }
                }
            }
            if (dot4) {
                float r[4];
                for (; n + 4 <= n1; n += 4) {
                    const void* w = W.row(n);
                    for (int64_t m = m0; m < m1; ++m) {
                        dot4(K, w, W.row_bytes, act + static_cast<size_t>(m) * act_row_bytes, r);
                        float* yr = y + m * N + n;
                        yr[0] = r[0];
                        yr[1] = r[1];
                        yr[2] = r[2];
                        yr[3] = r[3];
                    }
                }
            }
            for (; n < n1; ++n) {
                const void* w = W.row(n);
                for (int64_t m = m0; m < m1; ++m)
                    y[m * N + n] = dot(K, w, act + static_cast<size_t>(m) * act_row_bytes);
            }
        }
    };

    if (!threaded) {
        rows(0, N);
        return;
    }
    // Claimable chunks of output rows, about kChunksPerThread per thread (multiples of 4 rows, at
    // least 16): a thread that is slow to wake or preempted by another process delays only the
    // chunk it holds, and the others take the rest. Each output is computed exactly as in one
    // thread, so the split never changes a number.
    constexpr int64_t kChunksPerThread = 4;
    const int64_t target = pool.size() * kChunksPerThread;
    const int64_t chunk = std::max<int64_t>(16, ((N + target - 1) / target + 3) / 4 * 4);
    const int64_t n_chunks = (N + chunk - 1) / chunk;
    pool.parallel_tasks(
        n_chunks, [&](int64_t t, int) { rows(t * chunk, std::min<int64_t>(N, (t + 1) * chunk)); });
}

}  // namespace duan::kernels
