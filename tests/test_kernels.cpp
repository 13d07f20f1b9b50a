// Tests of the row kernels (kernels/kernels.h), the block layouts, ISA selection and matmul.
// Byte-identity with the reference quantizer is tested at the end (KernelsRef.*), reading the
// GGUF test models with a small parser of its own.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "core/thread_pool.h"
#include "kernels/blocks.h"
#include "kernels/isa.h"
#include "kernels/kernels.h"
#include "kernels/matmul.h"
#include "testdata.h"

namespace duan::kernels {
namespace {

const DType kWeightTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0, DType::Q4_1,
                              DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q2_K, DType::Q3_K,
                              DType::Q4_K, DType::Q5_K, DType::Q6_K};
const DType kAllTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0, DType::Q4_1,
                           DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q8_1, DType::Q2_K,
                           DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_K};

std::vector<float> random_row(int64_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, scale);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = dist(rng);
    return v;
}

std::vector<uint8_t> quantized(DType t, const std::vector<float>& x) {
    std::vector<uint8_t> q(dtype_row_bytes(t, static_cast<int64_t>(x.size())));
    quantize_row(t, x.data(), q.data(), static_cast<int64_t>(x.size()));
    return q;
}

std::vector<float> dequantized(DType t, const void* q, int64_t n) {
    std::vector<float> y(static_cast<size_t>(n));
    dequantize_row(t, q, y.data(), n);
    return y;
}

double rel_rms_error(const std::vector<float>& a, const std::vector<float>& b) {
    double e = 0, s = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        e += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
        s += double(a[i]) * a[i];
    }
    return std::sqrt(e / s);
}

// Expected relative RMS round-trip error for N(0,1) data (measured values are ~half of these).
double max_roundtrip_error(DType t) {
    switch (t) {
        case DType::F32:
            return 0;
        case DType::F16:
            return 5e-4;
        case DType::BF16:
            return 4e-3;
        case DType::Q8_0:
        case DType::Q8_1:
        case DType::Q8_K:
            return 0.01;
        case DType::Q6_K:
            return 0.02;
        case DType::Q5_0:
        case DType::Q5_1:
        case DType::Q5_K:
            return 0.05;
        case DType::Q4_0:
        case DType::Q4_1:
        case DType::Q4_K:
            return 0.1;
        case DType::Q3_K:
            return 0.2;
        case DType::Q2_K:
            return 0.4;
        default:
            return 0;
    }
}

// sum(dequant(w) * dequant(a)) in double — except that for Q4_1/Q5_1 the min term uses the
// activation block's stored f16 sum s (as the reference's dot does, by design), not the exact sum
// of its dequantized values: sum_j (d q_j + m) a_j = sum_j d q_j a_j + m * s.
double dequantized_dot(DType wt, const void* wq, const void* aq, int64_t n) {
    const DType at = vec_dot_type(wt);
    const auto wd = dequantized(wt, wq, n);
    const auto ad = dequantized(at, aq, n);
    double sum = 0;
    if (wt == DType::Q4_1 || wt == DType::Q5_1) {
        const auto* a = static_cast<const block_q8_1*>(aq);
        const size_t bytes = dtype_info(wt).block_bytes;
        for (int64_t b = 0; b < n / 32; ++b) {
            uint16_t m16;  // m is the second half of both block_q4_1 and block_q5_1
            std::memcpy(&m16, static_cast<const uint8_t*>(wq) + b * bytes + 2, 2);
            const double m = fp16_to_fp32(m16);
            for (int j = 0; j < 32; ++j) sum += (double(wd[32 * b + j]) - m) * ad[32 * b + j];
            sum += m * fp16_to_fp32(a[b].s);
        }
        return sum;
    }
    for (int64_t i = 0; i < n; ++i) sum += double(wd[i]) * ad[i];
    return sum;
}

TEST(Kernels, BlockSizesMatchDtypeTable) {
    EXPECT_EQ(sizeof(block_q4_0), dtype_info(DType::Q4_0).block_bytes);
    EXPECT_EQ(sizeof(block_q4_1), dtype_info(DType::Q4_1).block_bytes);
    EXPECT_EQ(sizeof(block_q5_0), dtype_info(DType::Q5_0).block_bytes);
    EXPECT_EQ(sizeof(block_q5_1), dtype_info(DType::Q5_1).block_bytes);
    EXPECT_EQ(sizeof(block_q8_0), dtype_info(DType::Q8_0).block_bytes);
    EXPECT_EQ(sizeof(block_q8_1), dtype_info(DType::Q8_1).block_bytes);
    EXPECT_EQ(sizeof(block_q2_K), dtype_info(DType::Q2_K).block_bytes);
    EXPECT_EQ(sizeof(block_q3_K), dtype_info(DType::Q3_K).block_bytes);
    EXPECT_EQ(sizeof(block_q4_K), dtype_info(DType::Q4_K).block_bytes);
    EXPECT_EQ(sizeof(block_q5_K), dtype_info(DType::Q5_K).block_bytes);
    EXPECT_EQ(sizeof(block_q6_K), dtype_info(DType::Q6_K).block_bytes);
    EXPECT_EQ(sizeof(block_q8_K), dtype_info(DType::Q8_K).block_bytes);
    EXPECT_EQ(dtype_info(DType::Q4_0).block_size, QK4_0);
    EXPECT_EQ(dtype_info(DType::Q6_K).block_size, QK_K);
}

TEST(Kernels, VecDotTypesAsReference) {
    EXPECT_EQ(vec_dot_type(DType::F32), DType::F32);
    EXPECT_EQ(vec_dot_type(DType::F16), DType::F16);
    EXPECT_EQ(vec_dot_type(DType::BF16), DType::BF16);
    EXPECT_EQ(vec_dot_type(DType::Q4_0), DType::Q8_0);
    EXPECT_EQ(vec_dot_type(DType::Q4_1), DType::Q8_1);
    EXPECT_EQ(vec_dot_type(DType::Q5_0), DType::Q8_0);
    EXPECT_EQ(vec_dot_type(DType::Q5_1), DType::Q8_1);
    EXPECT_EQ(vec_dot_type(DType::Q8_0), DType::Q8_0);
    for (DType t : {DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K})
        EXPECT_EQ(vec_dot_type(t), DType::Q8_K);
    EXPECT_THROW(vec_dot_type(DType::I32), Error);
    EXPECT_THROW(vec_dot(DType::Q8_K, 256, nullptr, nullptr), Error);
    for (DType t : kAllTypes) {
        EXPECT_TRUE(can_dequantize(t)) << dtype_name(t);
        EXPECT_TRUE(can_quantize(t)) << dtype_name(t);
    }
    EXPECT_FALSE(can_dequantize(DType::I8));
    EXPECT_FALSE(can_quantize(static_cast<DType>(99)));
}

TEST(Kernels, RejectsPartialBlocks) {
    std::vector<float> x(48, 1.0f);
    std::vector<uint8_t> q(1024);
    EXPECT_THROW(quantize_row(DType::Q4_0, x.data(), q.data(), 48), Error);
    EXPECT_THROW(dequantize_row(DType::Q4_K, q.data(), x.data(), 32), Error);
    EXPECT_THROW(quantize_row(DType::I8, x.data(), q.data(), 32), Error);
}

TEST(Kernels, RoundTripErrorWithinBounds) {
    const int64_t n = 4 * 256;
    const auto x = random_row(n, 1);
    for (DType t : kAllTypes) {
        const auto q = quantized(t, x);
        const auto y = dequantized(t, q.data(), n);
        const double err = rel_rms_error(x, y);
        EXPECT_LE(err, max_roundtrip_error(t)) << dtype_name(t);
        if (t != DType::F32) {
            EXPECT_GT(err, 0.0) << dtype_name(t);
        }
    }
}

TEST(Kernels, ZeroRowsQuantizeToZero) {
    const int64_t n = 512;
    const std::vector<float> x(n, 0.0f);
    for (DType t : kAllTypes) {
        const auto q = quantized(t, x);
        const auto y = dequantized(t, q.data(), n);
        for (float v : y) ASSERT_EQ(v, 0.0f) << dtype_name(t);
    }
}

// Q8_0 by hand: d = amax/127, q = roundf(x/d) (ties away from zero), d stored as f16.
TEST(Kernels, Q8_0MatchesDefinition) {
    std::vector<float> x(32);
    for (int i = 0; i < 32; ++i) x[i] = (i - 16) * 0.25f;  // amax = 4 at i = 0
    const auto q = quantized(DType::Q8_0, x);
    block_q8_0 b;
    std::memcpy(&b, q.data(), sizeof b);
    const float d = 4.0f / 127;
    EXPECT_EQ(b.d, fp32_to_fp16(d));
    for (int i = 0; i < 32; ++i)
        EXPECT_EQ(b.qs[i], static_cast<int8_t>(std::roundf(x[i] * (1 / d))));
    EXPECT_EQ(b.qs[0], -127);
}

TEST(Kernels, Q8_1SumAndQ8_KBsums) {
    const auto x = random_row(256, 7);
    const auto q1 = quantized(DType::Q8_1, x);
    const auto* b1 = reinterpret_cast<const block_q8_1*>(q1.data());
    for (int i = 0; i < 8; ++i) {
        int s = 0;
        for (int j = 0; j < 32; ++j) s += b1[i].qs[j];
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[32 * i + j]));
        EXPECT_EQ(b1[i].s, fp32_to_fp16(static_cast<float>(s) * (amax / 127)));
    }
    const auto qk = quantized(DType::Q8_K, x);
    block_q8_K bk;
    std::memcpy(&bk, qk.data(), sizeof bk);
    for (int j = 0; j < 16; ++j) {
        int s = 0;
        for (int l = 0; l < 16; ++l) s += bk.qs[16 * j + l];
        EXPECT_EQ(bk.bsums[j], s);
    }
    // The element of largest magnitude maps to exactly -127 * sign.
    int imax = 0;
    for (int i = 1; i < 256; ++i)
        if (std::fabs(x[i]) > std::fabs(x[imax])) imax = i;
    EXPECT_EQ(bk.qs[imax], -127);
    EXPECT_FLOAT_EQ(bk.d, x[imax] / -127.0f);
}

// vec_dot against the double-precision dot of the dequantized operands, for several row lengths
// (odd block counts included).
TEST(Kernels, VecDotMatchesDequantizedDot) {
    for (DType wt : kWeightTypes) {
        const DType at = vec_dot_type(wt);
        const int64_t bs = std::max(dtype_info(wt).block_size, dtype_info(at).block_size);
        for (int64_t nblocks : {1, 3, 7}) {
            const int64_t n = std::max<int64_t>(bs, 32) * nblocks;
            const auto w = random_row(n, 100 + static_cast<uint32_t>(nblocks));
            const auto a = random_row(n, 200 + static_cast<uint32_t>(nblocks), 3.0f);
            const auto wq = quantized(wt, w);
            const auto aq = quantized(at, a);
            const auto wd = dequantized(wt, wq.data(), n);
            const auto ad = dequantized(at, aq.data(), n);
            const double ref = dequantized_dot(wt, wq.data(), aq.data(), n);
            double mag = 0;
            for (int64_t i = 0; i < n; ++i) mag += std::fabs(double(wd[i]) * ad[i]);
            const float got = vec_dot(wt, n, wq.data(), aq.data());
            EXPECT_NEAR(got, ref, 2e-6 * mag + 1e-6) << dtype_name(wt) << " n=" << n;
            // And close to the exact float dot (quantization error only).
            double exact = 0;
            for (int64_t i = 0; i < n; ++i) exact += double(w[i]) * a[i];
            EXPECT_NEAR(got, exact, 0.05 * mag * (wt == DType::Q2_K ? 4 : 1) + 1e-3)
                << dtype_name(wt) << " n=" << n;
        }
    }
}

// ---- importance-weighted (imatrix) weight quantization
// ---------------------------------------------

const DType kQuantizableWeights[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                                     DType::Q8_0, DType::Q2_K, DType::Q3_K, DType::Q4_K,
                                     DType::Q5_K, DType::Q6_K};

TEST(Kernels, WeightedWithoutImatrixIsPlain) {
    const int64_t n = 512;
    const auto x = random_row(n, 31);
    for (DType t : kQuantizableWeights) {
        const auto plain = quantized(t, x);
        std::vector<uint8_t> w(plain.size());
        quantize_row_weighted(t, x.data(), w.data(), n, nullptr);
        EXPECT_EQ(plain, w) << dtype_name(t);
    }
}

// The imatrix path minimises sum_i imatrix_i * err_i^2, so on that measure it must beat the plain
// quantizer (which ignores it) when the importance is very uneven.
TEST(Kernels, WeightedImprovesWeightedError) {
    const int64_t n = 2048;
    std::vector<float> im(n);
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    for (auto& v : im) v = u(rng) < 0.1f ? 100.0f : 0.01f + u(rng);
    for (DType t : kQuantizableWeights) {
        if (t == DType::Q8_0) continue;  // Q8_0 ignores the imatrix, as the reference does
        double err_plain = 0, err_weighted = 0;
        for (uint32_t row = 0; row < 8; ++row) {
            const auto x = random_row(n, 500 + row);
            const auto qp = quantized(t, x);
            std::vector<uint8_t> qw(qp.size());
            quantize_row_weighted(t, x.data(), qw.data(), n, im.data());
            const auto yp = dequantized(t, qp.data(), n);
            const auto yw = dequantized(t, qw.data(), n);
            for (int64_t i = 0; i < n; ++i) {
                err_plain += im[i] * (double(x[i]) - yp[i]) * (double(x[i]) - yp[i]);
                err_weighted += im[i] * (double(x[i]) - yw[i]) * (double(x[i]) - yw[i]);
            }
        }
        EXPECT_LT(err_weighted, err_plain) << dtype_name(t);
    }
}

// Golden hashes of the reference's importance-weighted quantizers (quantize_q*_* with
// quant_weights, ggml 2026-08) on a deterministic input built from exact integer arithmetic.
TEST(Kernels, WeightedMatchesReferenceHashes) {
    auto mix = [](uint32_t x) {
        x ^= x >> 16;
        x *= 0x7feb352dU;
        x ^= x >> 15;
        x *= 0x846ca68bU;
        x ^= x >> 16;
        return x;
    };
    const int64_t K = 512, R = 4;
    std::vector<float> x(K * R), im(K);
    for (uint32_t i = 0; i < K * R; ++i) {
        const uint32_t h = mix(i + 1);
        float v = static_cast<float>(static_cast<int>(h % 2001) - 1000) / 250.0f;
        if (h % 17 == 0) v *= 8.0f;
        x[i] = v;
    }
    for (uint32_t i = 0; i < K; ++i)
        im[i] = static_cast<float>(mix(i + 100000) % 1000 + 1) / 100.0f;
    const std::pair<DType, uint64_t> expected[] = {
        {DType::Q4_0, 0x4126bc86239ab7eaull}, {DType::Q4_1, 0x8ab5f0f387a754e5ull},
        {DType::Q5_0, 0x909e9a4051bd18bdull}, {DType::Q5_1, 0x66a67516a2032535ull},
        {DType::Q2_K, 0x6b21b9bd6dbfd597ull}, {DType::Q3_K, 0xc37e853c0cc5c483ull},
        {DType::Q4_K, 0x27877815f0e3f6c8ull}, {DType::Q5_K, 0x5cac17529940e660ull},
        {DType::Q6_K, 0xc0a058674789629full},
    };
    for (const auto& [t, want] : expected) {
        const size_t rb = dtype_row_bytes(t, K);
        std::vector<uint8_t> out(rb * R);
        for (int64_t r = 0; r < R; ++r)
            quantize_row_weighted(t, x.data() + r * K, out.data() + r * rb, K, im.data());
        uint64_t h = 1469598103934665603ull;  // FNV-1a
        for (uint8_t b : out) {
            h ^= b;
            h *= 1099511628211ull;
        }
        EXPECT_EQ(h, want) << dtype_name(t);
    }
}

// ---- f16 / bf16 conversions -------------------------------------------------------------------

TEST(Kernels, Fp16Conversions) {
    EXPECT_EQ(fp32_to_fp16(1.0f), 0x3C00);
    EXPECT_EQ(fp32_to_fp16(-2.0f), 0xC000);
    EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7BFF);
    EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7C00);  // rounds up to inf
    EXPECT_EQ(fp32_to_fp16(std::numeric_limits<float>::infinity()), 0x7C00);
    EXPECT_EQ(fp32_to_fp16(-std::numeric_limits<float>::infinity()), 0xFC00);
    EXPECT_EQ(fp32_to_fp16(std::nanf("")) & 0x7C00, 0x7C00);
    EXPECT_NE(fp32_to_fp16(std::nanf("")) & 0x03FF, 0);
    EXPECT_TRUE(std::isnan(fp16_to_fp32(0x7E00)));
    EXPECT_TRUE(std::isinf(fp16_to_fp32(0x7C00)));
    // Denormals: smallest positive half is 2^-24; half of it rounds to even (zero).
    EXPECT_EQ(fp16_to_fp32(0x0001), std::ldexp(1.0f, -24));
    EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -24)), 0x0001);
    EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);
    EXPECT_EQ(fp32_to_fp16(std::ldexp(1.5f, -24)), 0x0002);  // tie -> even
    EXPECT_EQ(fp16_to_fp32(0x03FF), std::ldexp(1023.0f, -24));
    // Ties to even in the normal range: 1 + 2^-11 is halfway between 1 and 1 + 2^-10.
    EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
    EXPECT_EQ(fp32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);
    EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
    // Every finite half survives a round trip.
    for (uint32_t h = 0; h < 0x10000; ++h) {
        if ((h & 0x7C00) == 0x7C00) continue;
        ASSERT_EQ(fp32_to_fp16(fp16_to_fp32(static_cast<uint16_t>(h))), h) << h;
    }
}

TEST(Kernels, Bf16Conversions) {
    EXPECT_EQ(fp32_to_bf16(1.0f), 0x3F80);
    EXPECT_EQ(bf16_to_fp32(0x3F80), 1.0f);
    EXPECT_EQ(fp32_to_bf16(std::numeric_limits<float>::infinity()), 0x7F80);
    const uint16_t nan = fp32_to_bf16(std::nanf(""));
    EXPECT_TRUE(std::isnan(bf16_to_fp32(nan)));
    EXPECT_NE(nan & 0x0040, 0);  // quiet
    // A signalling NaN whose payload is only in the low bits stays a NaN (not inf).
    EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(f32_from_bits(0x7F800001u)))));
    // Round to nearest even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7.
    EXPECT_EQ(fp32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);
    EXPECT_EQ(fp32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3F82);
    // Denormals pass through (bf16 has f32's exponent range).
    EXPECT_EQ(fp32_to_bf16(f32_from_bits(0x00010000u)), 0x0001);
    EXPECT_EQ(bf16_to_fp32(0x0001), f32_from_bits(0x00010000u));
    // The dequantize/quantize rows use the same conversions.
    const std::vector<float> x = {1.0f, -0.0f, 3.140625f, 1e-40f};
    std::vector<uint16_t> h(4);
    quantize_row(DType::BF16, x.data(), h.data(), 4);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(h[i], fp32_to_bf16(x[i]));
    quantize_row(DType::F16, x.data(), h.data(), 4);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(h[i], fp32_to_fp16(x[i]));
}

// ---- ISA ---------------------------------------------------------------------------------------

TEST(Kernels, IsaNamesAndOverride) {
    for (Isa i : {Isa::Scalar, Isa::AVX2, Isa::AVX512, Isa::AVX512_VNNI, Isa::NEON,
                  Isa::NEON_DOTPROD, Isa::NEON_I8MM})
        EXPECT_EQ(isa_from_name(isa_name(i)), i);
    EXPECT_FALSE(isa_from_name("sse9").has_value());
    std::string warn;
    EXPECT_EQ(resolve_isa(Isa::AVX512_VNNI, "avx2", &warn), Isa::AVX2);
    EXPECT_TRUE(warn.empty());
    EXPECT_EQ(resolve_isa(Isa::AVX512_VNNI, nullptr, &warn), Isa::AVX512_VNNI);
    EXPECT_EQ(resolve_isa(Isa::AVX2, "scalar", &warn), Isa::Scalar);
    // Never raised above the CPU, never across architectures, unknown names refused.
    EXPECT_EQ(resolve_isa(Isa::AVX2, "avx512", &warn), Isa::AVX2);
    EXPECT_NE(warn.find("not supported"), std::string::npos);
    warn.clear();
    EXPECT_EQ(resolve_isa(Isa::AVX2, "i8mm", &warn), Isa::AVX2);
    EXPECT_FALSE(warn.empty());
    warn.clear();
    EXPECT_EQ(resolve_isa(Isa::NEON_DOTPROD, "bogus", &warn), Isa::NEON_DOTPROD);
    EXPECT_NE(warn.find("unknown"), std::string::npos);
    EXPECT_TRUE(isa_supports(Isa::NEON_I8MM, Isa::NEON));
    EXPECT_FALSE(isa_supports(Isa::NEON, Isa::NEON_DOTPROD));
    EXPECT_TRUE(isa_supports(Isa::AVX2, Isa::Scalar));
    // The active level is one the CPU has.
    EXPECT_TRUE(isa_supports(detect_isa(), active_isa()));
#if defined(__x86_64__)
    EXPECT_NE(detect_isa(), Isa::NEON);
#endif
}

// ---- matmul -------------------------------------------------------------------------------------

// Naive reference: dequantized weights times the activations after the same activation
// quantization, in double.
std::vector<float> naive_matmul(const Weight& W, const std::vector<float>& x, int64_t M) {
    const int64_t K = W.n_cols, N = W.n_rows;
    const DType at = vec_dot_type(W.type);
    std::vector<float> y(static_cast<size_t>(M * N));
    for (int64_t m = 0; m < M; ++m) {
        std::vector<float> xm(x.begin() + m * K, x.begin() + (m + 1) * K);
        const auto aq = quantized(at, xm);
        for (int64_t n = 0; n < N; ++n) {
            y[m * N + n] = static_cast<float>(dequantized_dot(W.type, W.row(n), aq.data(), K));
        }
    }
    return y;
}

TEST(Kernels, MatmulMatchesNaive) {
    const int64_t K = 512, N = 13;  // odd number of output rows
    for (DType wt : kWeightTypes) {
        // Weight matrix, quantized row by row, with a padded row stride to test row_bytes.
        const size_t rb = dtype_row_bytes(wt, K) + 16;
        std::vector<uint8_t> wdata(rb * N);
        for (int64_t n = 0; n < N; ++n) {
            const auto w = random_row(K, 1000 + static_cast<uint32_t>(n));
            quantize_row(wt, w.data(), wdata.data() + n * rb, K);
        }
        const Weight W{wt, K, N, rb, wdata.data()};
        for (int64_t M : {1, 7}) {
            const auto x = random_row(K * M, 77 + static_cast<uint32_t>(M), 2.0f);
            const auto ref = naive_matmul(W, x, M);
            for (int threads : {1, 2}) {
                ThreadPool pool(threads);
                std::vector<float> y(static_cast<size_t>(M * N), -1.0f);
                matmul(W, x.data(), M, y.data(), pool);
                for (size_t i = 0; i < y.size(); ++i)
                    ASSERT_NEAR(y[i], ref[i], 1e-4 * (std::fabs(ref[i]) + 10))
                        << dtype_name(wt) << " M=" << M << " threads=" << threads << " i=" << i;
            }
        }
    }
}

TEST(Kernels, MatmulRejectsBadShapes) {
    ThreadPool pool(1);
    std::vector<uint8_t> w(4096);
    std::vector<float> x(256), y(8);
    const Weight bad_k{DType::Q4_K, 128, 2, 1024, w.data()};
    EXPECT_THROW(matmul(bad_k, x.data(), 1, y.data(), pool), Error);
    const Weight bad_stride{DType::Q8_0, 256, 2, 100, w.data()};
    EXPECT_THROW(matmul(bad_stride, x.data(), 1, y.data(), pool), Error);
}

}  // namespace
}  // namespace duan::kernels

// ---- byte identity with the reference quantizer
// ----------------------------------------------------
//
// The quantized test models were made from llama-tiny-f32.gguf by the reference's quantize tool
// (no imatrix). Re-quantizing each tensor of the F32 file to the type it has in the quantized file
// must give the same bytes. A minimal GGUF reader of its own keeps this test independent of
// format/.

namespace duan::kernels {
namespace {

struct MiniTensor {
    DType type;
    std::vector<int64_t> ne;
    const uint8_t* data = nullptr;
    size_t bytes = 0;
};

struct MiniGguf {
    std::vector<uint8_t> buf;
    std::map<std::string, MiniTensor> tensors;
};

class Reader {
  public:
    Reader(const std::vector<uint8_t>& b) : b_(b) {}
    template <typename T>
    T get() {
        if (pos_ + sizeof(T) > b_.size()) throw std::runtime_error("gguf: truncated");
        T v;
        std::memcpy(&v, b_.data() + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }
    std::string str() {
        const auto len = get<uint64_t>();
        if (len > b_.size() - pos_) throw std::runtime_error("gguf: bad string");
        std::string s(reinterpret_cast<const char*>(b_.data() + pos_), len);
        pos_ += len;
        return s;
    }
    // Skips a value of GGUF type t; returns it as u64 when it is an unsigned integer.
    uint64_t skip(uint32_t t) {
        switch (t) {
            case 0:
            case 1:
            case 7:
                return get<uint8_t>();
            case 2:
            case 3:
                return get<uint16_t>();
            case 4:
            case 5:
            case 6:
                return get<uint32_t>();
            case 10:
            case 11:
            case 12:
                return get<uint64_t>();
            case 8:
                str();
                return 0;
            case 9: {
                const auto et = get<uint32_t>();
                const auto n = get<uint64_t>();
                for (uint64_t i = 0; i < n; ++i) skip(et);
                return 0;
            }
        }
        throw std::runtime_error("gguf: bad value type");
    }
    size_t pos() const { return pos_; }

  private:
    const std::vector<uint8_t>& b_;
    size_t pos_ = 0;
};

MiniGguf read_gguf(const std::string& path) {
    MiniGguf g;
    std::ifstream f(path, std::ios::binary | std::ios::ate);
    if (!f) throw std::runtime_error(path + ": cannot open");
    g.buf.resize(static_cast<size_t>(f.tellg()));
    f.seekg(0);
    f.read(reinterpret_cast<char*>(g.buf.data()), static_cast<std::streamsize>(g.buf.size()));
    Reader r(g.buf);
    if (r.get<uint32_t>() != 0x46554747u) throw std::runtime_error(path + ": not GGUF");
    r.get<uint32_t>();  // version
    const auto n_tensors = r.get<uint64_t>();
    const auto n_kv = r.get<uint64_t>();
    uint64_t alignment = 32;
    for (uint64_t i = 0; i < n_kv; ++i) {
        const std::string key = r.str();
        const uint64_t v = r.skip(r.get<uint32_t>());
        if (key == "general.alignment") alignment = v;
    }
    struct Info {
        std::string name;
        MiniTensor t;
        uint64_t offset;
    };
    std::vector<Info> infos;
    for (uint64_t i = 0; i < n_tensors; ++i) {
        Info in;
        in.name = r.str();
        const auto n_dims = r.get<uint32_t>();
        for (uint32_t d = 0; d < n_dims; ++d)
            in.t.ne.push_back(static_cast<int64_t>(r.get<uint64_t>()));
        in.t.type = static_cast<DType>(r.get<uint32_t>());
        in.offset = r.get<uint64_t>();
        infos.push_back(in);
    }
    const size_t data_start = (r.pos() + alignment - 1) / alignment * alignment;
    for (auto& in : infos) {
        int64_t n = 1;
        for (auto e : in.t.ne) n *= e;
        in.t.bytes = dtype_row_bytes(in.t.type, n);
        if (data_start + in.offset + in.t.bytes > g.buf.size())
            throw std::runtime_error(path + ": tensor out of range: " + in.name);
        in.t.data = g.buf.data() + data_start + in.offset;
        g.tensors[in.name] = in.t;
    }
    return g;
}

// The K-quant searches are slow under sanitizers and emulators, so by default those tensors are
// checked on an evenly spaced sample of rows; DUAN_TEST_FULL=1 compares every row.
bool full_run() {
    const char* e = std::getenv("DUAN_TEST_FULL");
    return e && *e && std::string(e) != "0";
}

int64_t row_stride(DType t, int64_t n_rows) {
    const bool slow = dtype_info(t).block_size == QK_K;
    if (!slow || full_run()) return 1;
    constexpr int64_t kMaxRows = 96;
    return std::max<int64_t>(1, (n_rows + kMaxRows - 1) / kMaxRows);
}

// Quantizes every tensor of `f32` to the type it has in `quant` and counts the rows whose bytes
// differ. Returns {rows compared, rows different}; `types_seen` collects the types compared.
std::pair<int64_t, int64_t> compare_with_reference(const MiniGguf& f32, const MiniGguf& quant,
                                                   std::map<std::string, int64_t>* types_seen) {
    int64_t rows = 0, diff = 0;
    for (const auto& [name, qt] : quant.tensors) {
        const auto it = f32.tensors.find(name);
        if (it == f32.tensors.end() || it->second.type != DType::F32) continue;
        const MiniTensor& src = it->second;
        EXPECT_EQ(src.ne, qt.ne) << name;
        const int64_t K = qt.ne[0];
        const int64_t n_rows = static_cast<int64_t>(src.bytes / sizeof(float)) / K;
        const size_t qrow = dtype_row_bytes(qt.type, K);
        std::vector<uint8_t> out(qrow);
        const auto* x = reinterpret_cast<const float*>(src.data);
        const int64_t stride = row_stride(qt.type, n_rows);
        int64_t tensor_rows = 0, tensor_diff = 0;
        for (int64_t r = 0; r < n_rows; r += stride) {
            quantize_row(qt.type, x + r * K, out.data(), K);
            if (std::memcmp(out.data(), qt.data + r * qrow, qrow) != 0) ++tensor_diff;
            ++tensor_rows;
        }
        EXPECT_EQ(tensor_diff, 0) << name << " (" << dtype_name(qt.type) << "): " << tensor_diff
                                  << " of " << tensor_rows << " rows differ";
        rows += tensor_rows;
        diff += tensor_diff;
        (*types_seen)[dtype_name(qt.type)] += tensor_rows;
    }
    return {rows, diff};
}

void expect_byte_identical(const std::string& file, std::initializer_list<DType> must_have) {
    // The F32 source: llama-tiny-f32 for llama-tiny-*, qwen2-tiny-f32 for qwen2-tiny-*, ...
    const std::string base = "models/" + file.substr(0, file.find("-tiny-")) + "-tiny-f32.gguf";
    const auto f32 = read_gguf(test::testdata(base));
    const auto q = read_gguf(test::testdata("models/" + file));
    std::map<std::string, int64_t> seen;
    const auto [rows, diff] = compare_with_reference(f32, q, &seen);
    EXPECT_GT(rows, 0);
    EXPECT_EQ(diff, 0) << file;
    for (DType t : must_have)
        EXPECT_GT(seen[dtype_name(t)], 0) << file << " has no " << dtype_name(t);
    std::string summary;
    for (const auto& [t, n] : seen) summary += " " + t + ":" + std::to_string(n);
    ::testing::Test::RecordProperty("types", summary);
    std::printf("  %s:%s\n", file.c_str(), summary.c_str());
}

#define DUAN_REF_TEST(test_name, file, ...)         \
    TEST(KernelsRef, test_name) {                   \
        DUAN_REQUIRE_TESTDATA("models/" file);      \
        expect_byte_identical(file, {__VA_ARGS__}); \
    }

DUAN_REF_TEST(Q8_0, "llama-tiny-q8_0.gguf", DType::Q8_0)
DUAN_REF_TEST(Q4_0, "llama-tiny-q4_0.gguf", DType::Q4_0)
DUAN_REF_TEST(Q4_1, "llama-tiny-q4_1.gguf", DType::Q4_1)
DUAN_REF_TEST(Q5_0, "llama-tiny-q5_0.gguf", DType::Q5_0)
DUAN_REF_TEST(F16, "llama-tiny-f16.gguf", DType::F16)
DUAN_REF_TEST(BF16, "llama-tiny-bf16.gguf", DType::BF16)
DUAN_REF_TEST(Q2_K, "llama-tiny-q2_k.gguf", DType::Q2_K)
DUAN_REF_TEST(Q3_K_M, "llama-tiny-q3_k_m.gguf", DType::Q3_K)
DUAN_REF_TEST(Q4_K_M, "llama-tiny-q4_k_m.gguf", DType::Q4_K)
DUAN_REF_TEST(Q5_K_M, "llama-tiny-q5_k_m.gguf", DType::Q5_K)
DUAN_REF_TEST(Q6_K, "llama-tiny-q6_k.gguf", DType::Q6_K)
DUAN_REF_TEST(Qwen2_Q4_0, "qwen2-tiny-q4_0.gguf", DType::Q4_0)
DUAN_REF_TEST(Qwen2_Q4_K_M, "qwen2-tiny-q4_k_m.gguf", DType::Q4_K, DType::Q6_K)
DUAN_REF_TEST(Qwen3_Q8_0, "qwen3-tiny-q8_0.gguf", DType::Q8_0)
DUAN_REF_TEST(Qwen3_Q4_K_M, "qwen3-tiny-q4_k_m.gguf", DType::Q4_K, DType::Q6_K)

}  // namespace
}  // namespace duan::kernels
