// Every SIMD table entry against the scalar reference (kernel_table.h), for every ISA level the
// CPU supports: vec_dot (integer parts exact: K-quants bit-identical, legacy and float types equal
// to float-summation rounding), activation quantizers byte-identical. Odd shapes (1, 3, 7 blocks),
// several rows, random data including extremes. Also matmul (decode and prefill paths, threaded or
// not) and the fused attention against a straightforward reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/fp16.h"
#include "core/thread_pool.h"
#include "kernels/attention.h"
#include "kernels/isa.h"
#include "kernels/kernel_table.h"
#include "kernels/kernels.h"
#include "kernels/matmul.h"

namespace duan::kernels {
namespace {

const DType kDotTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0, DType::Q4_1,
                           DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q2_K, DType::Q3_K,
                           DType::Q4_K, DType::Q5_K, DType::Q6_K};
const DType kActTypes[] = {DType::F16, DType::Q8_0, DType::Q8_1, DType::Q8_K};

std::vector<Isa> simd_levels() {
    std::vector<Isa> v;
    const Isa have = detect_isa();
    for (Isa i :
         {Isa::AVX2, Isa::AVX512, Isa::AVX512_VNNI, Isa::NEON, Isa::NEON_DOTPROD, Isa::NEON_I8MM})
        if (isa_supports(have, i)) v.push_back(i);
    return v;
}

bool is_kquant(DType t) {
    return t == DType::Q2_K || t == DType::Q3_K || t == DType::Q4_K || t == DType::Q5_K ||
           t == DType::Q6_K;
}

// Random row: mostly N(0,1), with a few extremes (large values, exact zeros, ties at .5 steps).
std::vector<float> test_row(int64_t n, uint32_t seed, int kind) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::uniform_int_distribution<int> pick(0, 15);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) {
        x = nd(rng);
        if (kind == 1) {  // extremes
            const int p = pick(rng);
            if (p == 0) x *= 1000.0f;
            if (p == 1) x = 0.0f;
            if (p == 2) x = std::round(x * 4.0f) * 0.5f;  // exact halves
        }
        if (kind == 2) x = 0.0f;  // all-zero row
    }
    if (kind == 1 && n > 5) v[static_cast<size_t>(n / 2)] = -v[0] * 1.5f - 3.0f;
    return v;
}

// Weight bytes through the reference weight quantizer (or float conversion).
std::vector<uint8_t> to_type(DType t, const std::vector<float>& x) {
    std::vector<uint8_t> q(dtype_row_bytes(t, static_cast<int64_t>(x.size())));
    quantize_row(t, x.data(), q.data(), static_cast<int64_t>(x.size()));
    return q;
}

TEST(Simd, ActivationQuantizersAreByteIdentical) {
    for (Isa isa : simd_levels()) {
        for (DType t : kActTypes) {
            const TypeKernels ref = scalar_kernels(t);
            const TypeKernels simd = kernels_for(t, isa);
            ASSERT_TRUE(simd.quantize);
            const int64_t bs = dtype_info(t).block_size;
            for (int64_t nblk : {1, 3, 7}) {
                const int64_t n = t == DType::F16 ? 7 * nblk + 3 : nblk * bs;
                for (int kind = 0; kind < 3; ++kind) {
                    const auto x = test_row(n, static_cast<uint32_t>(nblk * 10 + kind), kind);
                    std::vector<uint8_t> a(dtype_row_bytes(t, n)), b(a.size());
                    ref.quantize(x.data(), a.data(), n);
                    simd.quantize(x.data(), b.data(), n);
                    EXPECT_EQ(a, b) << isa_name(isa) << " " << dtype_info(t).name << " n=" << n
                                    << " kind=" << kind;
                    if (ref.quantize_act) {  // the activation form (halves to even)
                        ASSERT_TRUE(simd.quantize_act);
                        ref.quantize_act(x.data(), a.data(), n);
                        simd.quantize_act(x.data(), b.data(), n);
                        EXPECT_EQ(a, b) << isa_name(isa) << " " << dtype_info(t).name
                                        << " (activation form) n=" << n << " kind=" << kind;
                    }
                }
            }
        }
    }
}

// Exact ties for the activation quantizers: amax = 127 makes id = 1, so x.5 stays a tie.
TEST(Simd, ActivationQuantizersRoundTiesToEven) {
    std::vector<float> x(96);
    for (size_t i = 0; i < x.size(); ++i)
        x[i] = (i % 32 == 0) ? 127.0f : static_cast<float>(static_cast<int>(i % 9) - 4) + 0.5f;
    for (Isa isa : simd_levels()) {
        for (DType t : {DType::Q8_0, DType::Q8_1}) {
            const TypeKernels ref = scalar_kernels(t);
            const TypeKernels simd = kernels_for(t, isa);
            ASSERT_TRUE(ref.quantize_act && simd.quantize_act);
            std::vector<uint8_t> a(dtype_row_bytes(t, 96)), b(a.size());
            ref.quantize_act(x.data(), a.data(), 96);
            simd.quantize_act(x.data(), b.data(), 96);
            EXPECT_EQ(a, b) << isa_name(isa) << " " << dtype_info(t).name;
        }
    }
}

TEST(Simd, VecDotMatchesScalar) {
    for (Isa isa : simd_levels()) {
        for (DType t : kDotTypes) {
            const TypeKernels ref = scalar_kernels(t);
            const TypeKernels simd = kernels_for(t, isa);
            ASSERT_TRUE(simd.vec_dot);
            const DType at = ref.vec_dot_type;
            const int64_t bs = std::max(dtype_info(t).block_size, dtype_info(at).block_size);
            const bool is_float = t == DType::F32 || t == DType::F16 || t == DType::BF16;
            for (int64_t nblk : {1, 3, 7}) {
                // float types: also lengths that are not a multiple of the vector width
                const int64_t n = is_float ? nblk * 37 : nblk * bs;
                for (int kind = 0; kind < 3; ++kind) {
                    const auto xa = test_row(n, static_cast<uint32_t>(100 + nblk + kind), kind);
                    std::vector<uint8_t> act(dtype_row_bytes(at, n));
                    // the reference's activation bytes
                    scalar_kernels(at).quantize(xa.data(), act.data(), n);
                    for (int row = 0; row < 4; ++row) {
                        const auto xw = test_row(n, static_cast<uint32_t>(1000 + 7 * row + nblk),
                                                 row == 3 ? 1 : 0);
                        const auto w = to_type(t, xw);
                        const float r = ref.vec_dot(n, w.data(), act.data());
                        const float s = simd.vec_dot(n, w.data(), act.data());
                        const char* name = dtype_info(t).name;
                        if (is_kquant(t)) {
                            EXPECT_EQ(r, s) << isa_name(isa) << " " << name << " n=" << n;
                        } else {
                            // float-summation rounding: relative to the sum of |terms|
                            std::vector<float> wf(static_cast<size_t>(n)), af(wf.size());
                            dequantize_row(t, w.data(), wf.data(), n);
                            dequantize_row(at, act.data(), af.data(), n);
                            double mag = 0;
                            for (int64_t i = 0; i < n; ++i) mag += std::fabs(double(wf[i]) * af[i]);
                            EXPECT_NEAR(r, s, 1e-5 * mag + 1e-30)
                                << isa_name(isa) << " " << name << " n=" << n << " kind=" << kind;
                        }
                    }
                }
            }
        }
    }
}

// matmul against dot-by-dot with the scalar table: decode (M=1) and prefill shapes, tiny and
// threaded sizes, rows not a multiple of 4.
TEST(Simd, MatmulMatchesRowDots) {
    ThreadPool pool(2);
    struct Shape {
        int64_t K, N, M;
    };
    for (DType t : {DType::Q4_0, DType::Q5_0, DType::Q8_0, DType::Q4_K, DType::Q6_K, DType::F16,
                    DType::F32}) {
        for (Shape sh : {Shape{256, 7, 1}, Shape{512, 203, 1}, Shape{768, 301, 1},
                         Shape{256, 37, 5}, Shape{512, 70, 33}}) {
            const TypeKernels ref = scalar_kernels(t);
            const size_t rb = dtype_row_bytes(t, sh.K);
            std::vector<uint8_t> wbytes(rb * sh.N);
            for (int64_t r = 0; r < sh.N; ++r) {
                const auto x = test_row(sh.K, static_cast<uint32_t>(r + 17), 0);
                quantize_row(t, x.data(), wbytes.data() + r * rb, sh.K);
            }
            Weight W{t, sh.K, sh.N, rb, wbytes.data()};
            std::vector<float> x(static_cast<size_t>(sh.M * sh.K));
            for (int64_t m = 0; m < sh.M; ++m) {
                const auto row = test_row(sh.K, static_cast<uint32_t>(500 + m), 0);
                std::copy(row.begin(), row.end(), x.begin() + m * sh.K);
            }
            std::vector<float> y(static_cast<size_t>(sh.M * sh.N), -1.0f);
            matmul(W, x.data(), sh.M, y.data(), pool);
            const DType at = ref.vec_dot_type;
            std::vector<uint8_t> act(dtype_row_bytes(at, sh.K));
            for (int64_t m = 0; m < sh.M; ++m) {
                scalar_kernels(at).quantize(x.data() + m * sh.K, act.data(), sh.K);
                for (int64_t r = 0; r < sh.N; ++r) {
                    const float e = ref.vec_dot(sh.K, wbytes.data() + r * rb, act.data());
                    ASSERT_NEAR(y[m * sh.N + r], e, 1e-4f * (1.0f + std::fabs(e)))
                        << dtype_info(t).name << " K=" << sh.K << " N=" << sh.N << " M=" << sh.M
                        << " m=" << m << " r=" << r;
                }
            }
        }
    }
}

// Prefill output (y = x W^T through matmul) against row dots of the active ISA and of the scalar
// reference, bit for bit.
void expect_prefill_bit_identical(DType t, int64_t K, int64_t N, int64_t M, ThreadPool& pool) {
    const TypeKernels row = active_kernels(t);
    const TypeKernels ref = scalar_kernels(t);
    const DType at = ref.vec_dot_type;
    struct Shape {
        int64_t K, N, M;
    } sh{K, N, M};
    {
        const size_t rb = dtype_row_bytes(t, sh.K);
        std::vector<uint8_t> wbytes(rb * sh.N);
        for (int64_t r = 0; r < sh.N; ++r) {
            const auto x = test_row(sh.K, static_cast<uint32_t>(r + 29), r % 5 == 3 ? 1 : 0);
            quantize_row(t, x.data(), wbytes.data() + r * rb, sh.K);
        }
        Weight W{t, sh.K, sh.N, rb, wbytes.data()};
        std::vector<float> x(static_cast<size_t>(sh.M * sh.K));
        for (int64_t m = 0; m < sh.M; ++m) {
            const auto r = test_row(sh.K, static_cast<uint32_t>(900 + m), m % 7 == 2 ? 1 : 0);
            std::copy(r.begin(), r.end(), x.begin() + m * sh.K);
        }
        std::vector<float> y(static_cast<size_t>(sh.M * sh.N), -1.0f);
        matmul(W, x.data(), sh.M, y.data(), pool);
        std::vector<uint8_t> act(dtype_row_bytes(at, sh.K));
        const TypeKernels ak = scalar_kernels(at);
        for (int64_t m = 0; m < sh.M; ++m) {
            (ak.quantize_act ? ak.quantize_act : ak.quantize)(x.data() + m * sh.K, act.data(),
                                                              sh.K);
            for (int64_t r = 0; r < sh.N; ++r) {
                const float e = row.vec_dot(sh.K, wbytes.data() + r * rb, act.data());
                const float s = ref.vec_dot(sh.K, wbytes.data() + r * rb, act.data());
                const float g = y[m * sh.N + r];
                ASSERT_EQ(std::memcmp(&g, &e, 4), 0)
                    << dtype_info(t).name << " K=" << sh.K << " N=" << sh.N << " M=" << sh.M
                    << " m=" << m << " r=" << r << ": " << g << " vs row kernel " << e;
                ASSERT_EQ(std::memcmp(&g, &s, 4), 0)
                    << dtype_info(t).name << " K=" << sh.K << " N=" << sh.N << " M=" << sh.M
                    << " m=" << m << " r=" << r << ": " << g << " vs scalar " << s;
            }
        }
    }
}

// Q8_0 and Q6_K prefill (packed GEMMs under AVX-512 VNNI) are bit-identical to the active ISA's
// row kernel and to the scalar reference: every output sums in the reference's order. Odd shapes:
// M, N and K/32 not multiples of the tiles (4 or 8 activation rows, 16 weight rows).
TEST(Simd, PrefillIsBitIdenticalToRowDots) {
    ThreadPool pool(2);
    for (auto [K, N, M] : {std::array<int64_t, 3>{32, 1, 4},
                           {96, 17, 5},
                           {224, 31, 7},
                           {512, 70, 33},
                           {800, 203, 66},
                           {2080, 45, 4}})
        expect_prefill_bit_identical(DType::Q8_0, K, N, M, pool);
    for (auto [K, N, M] : {std::array<int64_t, 3>{256, 1, 4},
                           {256, 17, 5},
                           {768, 31, 13},
                           {1280, 70, 33},
                           {512, 203, 9}})
        expect_prefill_bit_identical(DType::Q6_K, K, N, M, pool);
}

// attend() against the plain reference: F16 query dot, softmax over all scores, probabilities
// rounded to F16, F16 values.
TEST(Simd, AttentionMatchesReference) {
    const int64_t hd = 64;
    for (int64_t n_kv : {1, 5, 64, 300}) {
        std::vector<uint16_t> K(n_kv * hd), V(n_kv * hd);
        std::mt19937 rng(static_cast<uint32_t>(n_kv));
        std::normal_distribution<float> nd(0.0f, 1.0f);
        for (auto& v : K) v = fp32_to_fp16(nd(rng) * 2.0f);
        for (auto& v : V) v = fp32_to_fp16(nd(rng));
        std::vector<float> q(hd);
        for (auto& v : q) v = nd(rng);
        const float scale = 0.125f;

        // reference
        std::vector<float> s(n_kv), ref(hd, 0.0f);
        std::vector<uint16_t> qh(hd);
        for (int64_t d = 0; d < hd; ++d) qh[d] = fp32_to_fp16(q[d]);
        for (int64_t j = 0; j < n_kv; ++j)
            s[j] = scalar::vec_dot_f16(hd, K.data() + j * hd, qh.data());
        float mx = -INFINITY;
        for (auto& v : s) mx = std::max(mx, v * scale);
        double sum = 0;
        for (auto& v : s) sum += (v = std::exp(v * scale - mx));
        for (int64_t j = 0; j < n_kv; ++j) {
            const float p = round_fp16(static_cast<float>(s[j] / sum));
            for (int64_t d = 0; d < hd; ++d) ref[d] += p * fp16_to_fp32(V[j * hd + d]);
        }

        KVView kv;
        kv.k = reinterpret_cast<const uint8_t*>(K.data());
        kv.v = reinterpret_cast<const uint8_t*>(V.data());
        kv.k_stride = kv.v_stride = hd * 2;
        std::vector<float> out(hd);
        AttnScratch sc;
        attend(q.data(), hd, kv, n_kv, scale, out.data(), sc);
        for (int64_t d = 0; d < hd; ++d)
            EXPECT_NEAR(out[d], ref[d], 2e-3f * (1.0f + std::fabs(ref[d]))) << "n_kv=" << n_kv;
    }
}

}  // namespace
}  // namespace duan::kernels
