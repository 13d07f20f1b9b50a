// The aarch64 NEON kernels (kernels/arm/) against the scalar reference, for every NEON level the
// CPU supports (neon, dotprod, i8mm; under qemu the -cpu option decides which). Compiled on every
// target; on others the tests skip. Complements test_simd.cpp with the NEON contract:
//  - every quantized vec_dot is bit-identical to the scalar one (exact integer sums, the scalar's
//    float operand order), also on random block bytes (all quant codes, including the extremes the
//    quantizers never emit) and odd block counts;
//  - the activation quantizers are byte-identical, including Q8_K's sign ties and exact halves;
//  - the float dots agree to f32 summation rounding on lengths that are not a vector multiple;
//  - the 4-row dots (decode) and the i8mm 2x2 tiles equal single-row scalar dots bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/fp16.h"
#include "kernels/blocks.h"
#include "kernels/isa.h"
#include "kernels/kernel_table.h"
#include "kernels/kernels.h"
#if defined(__aarch64__)
#include "kernels/arm/neon_kernels.h"
#endif

namespace duan::kernels {
namespace {

#if defined(__aarch64__)
constexpr bool kArm = true;
#else
constexpr bool kArm = false;
#endif

#define DUAN_REQUIRE_ARM() \
    if (kArm) {            \
    } else                 \
        GTEST_SKIP() << "aarch64 only (cross-built and run under qemu in .ci/aarch64.sh)"

std::vector<Isa> neon_levels() {
    std::vector<Isa> v;
    for (Isa i : {Isa::NEON, Isa::NEON_DOTPROD, Isa::NEON_I8MM})
        if (isa_supports(detect_isa(), i)) v.push_back(i);
    return v;
}

const DType kQuantTypes[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0,
                             DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};

std::vector<float> normal_row(int64_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, scale);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = nd(rng);
    return v;
}

uint16_t random_half(std::mt19937& rng, float lo, float hi) {
    std::uniform_real_distribution<float> u(lo, hi);
    return fp32_to_fp16(u(rng));
}

// Random bytes for a row of type t, with the float fields (scales, mins, Q8_1 sums, Q8_K d) set
// to sane values and Q8_K's bsums consistent with its quants.
std::vector<uint8_t> random_blocks(DType t, int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> buf(dtype_row_bytes(t, n));
    for (auto& b : buf) b = static_cast<uint8_t>(rng());
    const int64_t nb = n / dtype_info(t).block_size;
    auto each = [&](auto* blocks, auto fix) {
        for (int64_t i = 0; i < nb; ++i) fix(blocks[i]);
    };
    void* p = buf.data();
    switch (t) {
        case DType::Q4_0:
            each(static_cast<block_q4_0*>(p),
                 [&](auto& b) { b.d = random_half(rng, -0.1f, 0.1f); });
            break;
        case DType::Q5_0:
            each(static_cast<block_q5_0*>(p),
                 [&](auto& b) { b.d = random_half(rng, -0.1f, 0.1f); });
            break;
        case DType::Q8_0:
            each(static_cast<block_q8_0*>(p),
                 [&](auto& b) { b.d = random_half(rng, -0.1f, 0.1f); });
            break;
        case DType::Q4_1:
            each(static_cast<block_q4_1*>(p), [&](auto& b) {
                b.d = random_half(rng, 0.0f, 0.1f);
                b.m = random_half(rng, -1.0f, 0.0f);
            });
            break;
        case DType::Q5_1:
            each(static_cast<block_q5_1*>(p), [&](auto& b) {
                b.d = random_half(rng, 0.0f, 0.1f);
                b.m = random_half(rng, -1.0f, 0.0f);
            });
            break;
        case DType::Q8_1:
            each(static_cast<block_q8_1*>(p), [&](auto& b) {
                b.d = random_half(rng, 0.0f, 0.05f);
                b.s = random_half(rng, -4.0f, 4.0f);
            });
            break;
        case DType::Q2_K:
            each(static_cast<block_q2_K*>(p), [&](auto& b) {
                b.d = random_half(rng, 0.0f, 0.1f);
                b.dmin = random_half(rng, 0.0f, 0.1f);
            });
            break;
        case DType::Q3_K:
            each(static_cast<block_q3_K*>(p),
                 [&](auto& b) { b.d = random_half(rng, -0.1f, 0.1f); });
            break;
        case DType::Q4_K:
            each(static_cast<block_q4_K*>(p), [&](auto& b) {
                b.d = random_half(rng, 0.0f, 0.1f);
                b.dmin = random_half(rng, 0.0f, 0.1f);
            });
            break;
        case DType::Q5_K:
            each(static_cast<block_q5_K*>(p), [&](auto& b) {
                b.d = random_half(rng, 0.0f, 0.1f);
                b.dmin = random_half(rng, 0.0f, 0.1f);
            });
            break;
        case DType::Q6_K:
            each(static_cast<block_q6_K*>(p),
                 [&](auto& b) { b.d = random_half(rng, -0.1f, 0.1f); });
            break;
        case DType::Q8_K:
            each(static_cast<block_q8_K*>(p), [&](auto& b) {
                b.d = std::uniform_real_distribution<float>(-0.05f, 0.05f)(rng);
                for (int j = 0; j < QK_K / 16; ++j) {
                    int s = 0;
                    for (int l = 0; l < 16; ++l) s += b.qs[16 * j + l];
                    b.bsums[j] = static_cast<int16_t>(s);
                }
            });
            break;
        default:
            break;
    }
    return buf;
}

std::vector<uint8_t> scalar_quantized(DType t, const std::vector<float>& x) {
    const auto n = static_cast<int64_t>(x.size());
    std::vector<uint8_t> q(dtype_row_bytes(t, n));
    const TypeKernels k = scalar_kernels(t);
    if (k.quantize_weighted)
        k.quantize_weighted(x.data(), q.data(), n, nullptr);
    else
        k.quantize(x.data(), q.data(), n);
    return q;
}

TEST(SimdArm, DetectsANeonLevel) {
    DUAN_REQUIRE_ARM();
    const Isa have = detect_isa();
    EXPECT_TRUE(isa_supports(have, Isa::NEON)) << isa_name(have);
#if defined(__aarch64__)
    std::printf("[          ] aarch64 CPU level: %s (active: %s), FHM: %s\n", isa_name(have),
                isa_name(active_isa()), arm::cpu_has_fhm() ? "yes" : "no");
#endif
}

TEST(SimdArm, EveryDotAndActivationQuantizerIsNeon) {
    DUAN_REQUIRE_ARM();
    for (Isa isa : neon_levels()) {
        for (DType t : kQuantTypes)
            EXPECT_NE(kernels_for(t, isa).vec_dot, scalar_kernels(t).vec_dot)
                << isa_name(isa) << " " << dtype_name(t);
        for (DType t : {DType::F32, DType::F16, DType::BF16})
            EXPECT_NE(kernels_for(t, isa).vec_dot, scalar_kernels(t).vec_dot)
                << isa_name(isa) << " " << dtype_name(t);
        for (DType t : {DType::Q8_0, DType::Q8_1, DType::Q8_K})
            EXPECT_NE(kernels_for(t, isa).quantize, scalar_kernels(t).quantize)
                << isa_name(isa) << " " << dtype_name(t);
    }
    // The two dot builds differ (dotprod is its own code, not the baseline again).
    if (isa_supports(detect_isa(), Isa::NEON_DOTPROD)) {
        EXPECT_NE(kernels_for(DType::Q4_0, Isa::NEON).vec_dot,
                  kernels_for(DType::Q4_0, Isa::NEON_DOTPROD).vec_dot);
    }
}

TEST(SimdArm, QuantizedDotsAreBitIdentical) {
    DUAN_REQUIRE_ARM();
    for (Isa isa : neon_levels()) {
        for (DType t : kQuantTypes) {
            const TypeKernels ref = scalar_kernels(t);
            const TypeKernels simd = kernels_for(t, isa);
            const DType at = ref.vec_dot_type;
            const int64_t bs = dtype_info(t).block_size;
            for (int64_t nblk : {1, 3, 5, 9}) {
                const int64_t n = nblk * bs;
                for (int kind = 0; kind < 2; ++kind) {
                    // kind 0: quantized normal data; kind 1: random bytes (every quant code)
                    const auto seed = static_cast<uint32_t>(nblk * 31 + kind);
                    const auto w = kind == 0 ? scalar_quantized(t, normal_row(n, seed))
                                             : random_blocks(t, n, seed);
                    const auto a = kind == 0 ? scalar_quantized(at, normal_row(n, seed + 7, 2.0f))
                                             : random_blocks(at, n, seed + 7);
                    const float r = ref.vec_dot(n, w.data(), a.data());
                    const float s = simd.vec_dot(n, w.data(), a.data());
                    EXPECT_EQ(f32_bits(r), f32_bits(s))
                        << isa_name(isa) << " " << dtype_name(t) << " n=" << n << " kind=" << kind
                        << ": scalar " << r << " neon " << s;
                }
            }
        }
    }
}

// Rows that stress the quantizers: exact halves (rounding mode), +a/-a magnitude ties (Q8_K takes
// the first), an all-zero block, and values with a huge range.
std::vector<float> quantizer_row(int64_t n, uint32_t seed, int kind) {
    auto v = normal_row(n, seed);
    for (size_t i = 0; i < v.size(); ++i) {
        if (kind == 1) v[i] = std::round(v[i] * 8.0f) * 0.5f;
        if (kind == 2 && i % 256 < 32) v[i] = 0.0f;  // a zero Q8_0 block in each 256
        if (kind == 3) v[i] *= (i % 7 == 0) ? 1e4f : 1e-3f;
    }
    if (kind == 1) {
        for (size_t b = 0; b + 256 <= v.size(); b += 256) {  // sign ties in every super-block
            v[b + 5] = 9.0f;
            v[b + 3 + (b / 256) % 2 * 10] = -9.0f;
        }
    }
    if (kind == 2)
        for (size_t i = 256; i < v.size() && i < 512; ++i) v[i] = 0.0f;  // an all-zero Q8_K block
    return v;
}

TEST(SimdArm, ActivationQuantizersAreByteIdentical) {
    DUAN_REQUIRE_ARM();
    for (Isa isa : neon_levels())
        for (DType t : {DType::Q8_0, DType::Q8_1, DType::Q8_K}) {
            const TypeKernels ref = scalar_kernels(t), simd = kernels_for(t, isa);
            for (int64_t n : {256, 768, 1280})
                for (int kind = 0; kind < 4; ++kind) {
                    const auto x = quantizer_row(n, static_cast<uint32_t>(n + kind), kind);
                    std::vector<uint8_t> a(dtype_row_bytes(t, n)), b(a.size());
                    ref.quantize(x.data(), a.data(), n);
                    simd.quantize(x.data(), b.data(), n);
                    EXPECT_EQ(a, b)
                        << isa_name(isa) << " " << dtype_name(t) << " n=" << n << " kind=" << kind;
                }
        }
}

TEST(SimdArm, FloatDotsMatchScalar) {
    DUAN_REQUIRE_ARM();
    for (Isa isa : neon_levels())
        for (DType t : {DType::F32, DType::F16, DType::BF16}) {
            const TypeKernels ref = scalar_kernels(t), simd = kernels_for(t, isa);
            for (int64_t n : {1, 3, 15, 16, 17, 31, 33, 255, 1001, 4099}) {
                const auto xw = normal_row(n, static_cast<uint32_t>(n));
                const auto xa = normal_row(n, static_cast<uint32_t>(n + 1), 3.0f);
                std::vector<uint8_t> w(dtype_row_bytes(t, n)), a(w.size());
                ref.quantize(xw.data(), w.data(), n);
                ref.quantize(xa.data(), a.data(), n);
                std::vector<float> wf(static_cast<size_t>(n)), af(wf.size());
                ref.dequantize(w.data(), wf.data(), n);
                ref.dequantize(a.data(), af.data(), n);
                double mag = 0;
                for (int64_t i = 0; i < n; ++i) mag += std::fabs(double(wf[i]) * af[i]);
                const float r = ref.vec_dot(n, w.data(), a.data());
                const float s = simd.vec_dot(n, w.data(), a.data());
                EXPECT_NEAR(r, s, 2e-6 * mag + 1e-30)
                    << isa_name(isa) << " " << dtype_name(t) << " n=" << n;
            }
        }
}

// Two or four rows of `t` (weights) / Q8_0 (activations) packed `stride` bytes apart, from
// quantized normal data (kind 0) or random bytes (kind 1).
std::vector<uint8_t> packed_rows(DType t, int64_t n, int rows, size_t stride, uint32_t seed,
                                 int kind) {
    std::vector<uint8_t> buf(stride * rows, 0xEE);
    for (int r = 0; r < rows; ++r) {
        const auto s = seed + static_cast<uint32_t>(r);
        const auto row = kind == 0 ? scalar_quantized(t, normal_row(n, s)) : random_blocks(t, n, s);
        std::memcpy(buf.data() + r * stride, row.data(), row.size());
    }
    return buf;
}

TEST(SimdArm, FourRowDotsAreBitIdentical) {
    DUAN_REQUIRE_ARM();
#if defined(__aarch64__)
    using Dot4 = void (*)(int64_t, const void*, size_t, const void*, float*);
    const bool dp = isa_supports(detect_isa(), Isa::NEON_DOTPROD);
    const struct {
        DType t;
        Dot4 fn;
        const char* level;
    } cases[] = {{DType::Q4_0, arm::neon::vec_dot4_q4_0_q8_0, "neon"},
                 {DType::Q8_0, arm::neon::vec_dot4_q8_0_q8_0, "neon"},
                 {DType::Q4_0, dp ? arm::dotprod::vec_dot4_q4_0_q8_0 : nullptr, "dotprod"},
                 {DType::Q8_0, dp ? arm::dotprod::vec_dot4_q8_0_q8_0 : nullptr, "dotprod"}};
    for (const auto& c : cases) {
        if (!c.fn) continue;
        const TypeKernels ref = scalar_kernels(c.t);
        for (int64_t nblk : {1, 3, 7, 33}) {
            const int64_t n = nblk * 32;
            const size_t stride = dtype_row_bytes(c.t, n) + 6;  // rows not back to back
            for (int kind = 0; kind < 2; ++kind) {
                const auto seed = static_cast<uint32_t>(100 * nblk + 10 * kind);
                const auto w = packed_rows(c.t, n, 4, stride, seed, kind);
                const auto a = packed_rows(DType::Q8_0, n, 1, dtype_row_bytes(DType::Q8_0, n),
                                           seed + 50, kind);
                float out[4];
                c.fn(n, w.data(), stride, a.data(), out);
                for (int r = 0; r < 4; ++r)
                    EXPECT_EQ(f32_bits(out[r]),
                              f32_bits(ref.vec_dot(n, w.data() + r * stride, a.data())))
                        << c.level << " " << dtype_name(c.t) << " n=" << n << " row " << r;
            }
        }
    }
#endif
}

TEST(SimdArm, I8mmTilesAreBitIdentical) {
    DUAN_REQUIRE_ARM();
#if defined(__aarch64__)
    if (!isa_supports(detect_isa(), Isa::NEON_I8MM)) GTEST_SKIP() << "CPU has no i8mm";
    using Tile = void (*)(int64_t, const void*, size_t, const void*, size_t, float*);
    const struct {
        DType t;
        Tile fn;
    } cases[] = {{DType::Q4_0, arm::i8mm::vec_dot_2x2_q4_0_q8_0},
                 {DType::Q8_0, arm::i8mm::vec_dot_2x2_q8_0_q8_0}};
    for (const auto& c : cases) {
        const TypeKernels ref = scalar_kernels(c.t);
        for (int64_t nblk : {1, 3, 7, 33}) {
            const int64_t n = nblk * 32;
            const size_t ws = dtype_row_bytes(c.t, n) + 2, as = dtype_row_bytes(DType::Q8_0, n);
            for (int kind = 0; kind < 2; ++kind) {
                const auto seed = static_cast<uint32_t>(100 * nblk + 10 * kind);
                const auto w = packed_rows(c.t, n, 2, ws, seed, kind);
                const auto a = packed_rows(DType::Q8_0, n, 2, as, seed + 50, kind);
                float out[4];
                c.fn(n, w.data(), ws, a.data(), as, out);
                for (int m = 0; m < 2; ++m)
                    for (int r = 0; r < 2; ++r)
                        EXPECT_EQ(f32_bits(out[2 * m + r]),
                                  f32_bits(ref.vec_dot(n, w.data() + r * ws, a.data() + m * as)))
                            << dtype_name(c.t) << " n=" << n << " w" << r << " a" << m;
            }
        }
    }
#endif
}

}  // namespace
}  // namespace duan::kernels
