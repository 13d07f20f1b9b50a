// The attention pieces: exp_poly against the correctly rounded exp; each x86 SIMD piece
// (x86/x86_attn.h) against its scalar reference on odd shapes, for every level the CPU has (QK
// bit-identical to that level's vec_dot_f16, PV and axpy bit-identical to the scalar loops, the
// softmax within one ulp); attend() for F16, Q8_0 and Q4_0 caches against a plain reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/fp16.h"
#include "kernels/attention.h"
#include "kernels/isa.h"
#include "kernels/kernel_table.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "kernels/x86/x86_attn.h"
#include "kernels/x86/x86_kernels.h"

namespace duan::kernels {
namespace {

// Distance in units in the last place between two finite floats of the same sign.
int64_t ulp_diff(float a, float b) {
    int32_t ia, ib;
    std::memcpy(&ia, &a, 4);
    std::memcpy(&ib, &b, 4);
    if (ia < 0) ia = INT32_MIN - ia;
    if (ib < 0) ib = INT32_MIN - ib;
    return std::llabs(static_cast<int64_t>(ia) - ib);
}

TEST(Attention, ExpPolyWithinOneUlp) {
    int64_t worst = 0;
    float worst_x = 0;
    // Dense over the whole finite range, plus every float in [-1, 0] at a coarser step.
    for (double x = -103.9; x < 88.7; x += 1.3e-4) {
        const float xf = static_cast<float>(x);
        const float e = static_cast<float>(std::exp(static_cast<double>(xf)));
        const int64_t d = ulp_diff(exp_poly(xf), e);
        if (d > worst) worst = d, worst_x = xf;
    }
    EXPECT_LE(worst, 1) << "at x = " << worst_x;
    EXPECT_EQ(exp_poly(0.0f), 1.0f);
    EXPECT_EQ(exp_poly(-INFINITY), 0.0f);
    EXPECT_EQ(exp_poly(-200.0f), 0.0f);
    EXPECT_EQ(exp_poly(INFINITY), INFINITY);
    EXPECT_EQ(exp_poly(100.0f), INFINITY);
    EXPECT_TRUE(std::isnan(exp_poly(NAN)));
    // subnormal results round once
    EXPECT_LE(ulp_diff(exp_poly(-95.0f), static_cast<float>(std::exp(-95.0))), 1);
}

TEST(Attention, SoftmaxSumsToOne) {
    std::vector<float> x = {1.0f, 2.0f, 3.0f, -50.0f, 0.5f};
    softmax(x.data(), static_cast<int64_t>(x.size()), 0.5f);
    double s = 0;
    for (float v : x) s += v;
    EXPECT_NEAR(s, 1.0, 1e-6);
    EXPECT_GT(x[2], x[1]);
}

#if defined(__x86_64__)
struct AttnFns {
    const char* name;
    Isa isa;
    void (*qk_f16)(int64_t, const float*, const uint8_t*, size_t, int64_t, float*);
    void (*softmax)(float*, int64_t, float, bool);
    void (*pv_f16)(int64_t, const float*, const uint8_t*, size_t, int64_t, float*);
    void (*axpy_f32)(int64_t, float, const float*, float*);
    float (*vec_dot_f16)(int64_t, const void*, const void*);
    void (*pv_q8_0)(int64_t, const float*, const uint8_t*, size_t, int64_t, float*);
    void (*pv_q4_0)(int64_t, const float*, const uint8_t*, size_t, int64_t, float*);
};

std::vector<AttnFns> levels() {
    std::vector<AttnFns> v;
    const Isa have = detect_isa();
    if (isa_supports(have, Isa::AVX2))
        v.push_back({"avx2", Isa::AVX2, avx2::attn_qk_f16, avx2::attn_softmax, avx2::attn_pv_f16,
                     avx2::attn_axpy_f32, avx2::vec_dot_f16, avx2::attn_pv_q8_0,
                     avx2::attn_pv_q4_0});
    if (isa_supports(have, Isa::AVX512_VNNI))
        v.push_back({"avx512vnni", Isa::AVX512_VNNI, avx512vnni::attn_qk_f16,
                     avx512vnni::attn_softmax, avx512vnni::attn_pv_f16, avx512vnni::attn_axpy_f32,
                     avx512vnni::vec_dot_f16, avx512vnni::attn_pv_q8_0, avx512vnni::attn_pv_q4_0});
    return v;
}

std::vector<uint16_t> f16_rows(int64_t n, uint32_t seed, float sigma) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, sigma);
    std::vector<uint16_t> v(static_cast<size_t>(n));
    for (auto& h : v) h = fp32_to_fp16(nd(rng));
    return v;
}

TEST(Attention, QkF16BitIdenticalToVecDot) {
    for (const AttnFns& f : levels())
        for (int64_t hd : {8, 24, 40, 64, 72, 128, 136})
            for (int64_t n_kv : {1, 3, 7, 8, 9, 15, 16, 17, 100}) {
                const int64_t pad = 5;  // row stride longer than the row, as in the cache
                const size_t stride = 2 * static_cast<size_t>(hd + pad);
                auto K = f16_rows(n_kv * (hd + pad), static_cast<uint32_t>(hd * 1000 + n_kv), 2.0f);
                auto qh = f16_rows(hd, static_cast<uint32_t>(hd), 1.0f);
                std::vector<float> q(static_cast<size_t>(hd));
                for (int64_t d = 0; d < hd; ++d) q[d] = fp16_to_fp32(qh[d]);
                std::vector<float> s(static_cast<size_t>(n_kv), -1.0f);
                const auto* kb = reinterpret_cast<const uint8_t*>(K.data());
                f.qk_f16(hd, q.data(), kb, stride, n_kv, s.data());
                for (int64_t j = 0; j < n_kv; ++j) {
                    const float e = f.vec_dot_f16(hd, kb + j * stride, qh.data());
                    ASSERT_EQ(f32_bits(s[j]), f32_bits(e))
                        << f.name << " hd=" << hd << " n_kv=" << n_kv << " j=" << j;
                    const float r = scalar::vec_dot_f16(hd, kb + j * stride, qh.data());
                    ASSERT_NEAR(s[j], r, 1e-4f * (1.0f + std::fabs(r)));
                }
            }
}

TEST(Attention, SoftmaxMatchesScalar) {
    for (const AttnFns& f : levels())
        for (int64_t n : {1, 2, 7, 8, 9, 31, 64, 300, 1001})
            for (bool round : {false, true}) {
                std::mt19937 rng(static_cast<uint32_t>(n));
                std::normal_distribution<float> nd(0.0f, 8.0f);
                std::vector<float> x(static_cast<size_t>(n));
                for (auto& v : x) v = nd(rng);
                if (n > 4) x[3] = -1e30f;  // underflows to 0
                std::vector<float> ref = x;
                softmax(ref.data(), n, 0.125f);
                if (round)
                    for (auto& v : ref) v = round_fp16(v);
                f.softmax(x.data(), n, 0.125f, round);
                for (int64_t i = 0; i < n; ++i) {
                    // Only the double sum's order differs: at most one ulp (of F16 when rounded).
                    const float tol = round ? std::fabs(ref[i]) * 1e-3f : 0.0f;
                    if (std::fabs(x[i] - ref[i]) > tol) {
                        ASSERT_LE(ulp_diff(x[i], ref[i]), 1)
                            << f.name << " n=" << n << " i=" << i << " " << x[i] << " " << ref[i];
                    }
                }
            }
}

TEST(Attention, PvF16BitIdenticalToScalarLoop) {
    for (const AttnFns& f : levels())
        for (int64_t hd : {8, 24, 40, 64, 72, 96, 128, 136})
            for (int64_t n_kv : {1, 5, 33}) {
                const size_t stride = 2 * static_cast<size_t>(hd + 3);
                auto V = f16_rows(n_kv * (hd + 3), static_cast<uint32_t>(hd + n_kv), 1.0f);
                std::vector<float> p(static_cast<size_t>(n_kv));
                std::mt19937 rng(9);
                std::uniform_real_distribution<float> u(0.0f, 0.2f);
                for (int64_t j = 0; j < n_kv; ++j) p[j] = j % 4 == 2 ? 0.0f : round_fp16(u(rng));
                const auto* vb = reinterpret_cast<const uint8_t*>(V.data());
                std::vector<float> out(static_cast<size_t>(hd), -7.0f), ref(hd, 0.0f);
                f.pv_f16(hd, p.data(), vb, stride, n_kv, out.data());
                for (int64_t j = 0; j < n_kv; ++j) {
                    if (p[j] == 0.0f) continue;
                    const auto* v = reinterpret_cast<const uint16_t*>(vb + j * stride);
                    for (int64_t d = 0; d < hd; ++d) ref[d] += p[j] * fp16_to_fp32(v[d]);
                }
                for (int64_t d = 0; d < hd; ++d)
                    ASSERT_EQ(f32_bits(out[d]), f32_bits(ref[d]))
                        << f.name << " hd=" << hd << " n_kv=" << n_kv << " d=" << d;
            }
}

TEST(Attention, PvQuantBitIdenticalToDequantizeThenLoop) {
    for (const AttnFns& f : levels())
        for (DType t : {DType::Q8_0, DType::Q4_0})
            for (int64_t hd : {32, 64, 96, 160})
                for (int64_t n_kv : {1, 4, 37}) {
                    const size_t row = dtype_row_bytes(t, hd), stride = row + 6;
                    std::vector<uint8_t> V(stride * n_kv);
                    std::mt19937 rng(static_cast<uint32_t>(hd * 31 + n_kv));
                    std::normal_distribution<float> nd(0.0f, 1.5f);
                    std::vector<float> src(static_cast<size_t>(hd)), vr(src.size());
                    for (int64_t j = 0; j < n_kv; ++j) {
                        for (auto& x : src) x = nd(rng);
                        quantize_activation_row(t, src.data(), V.data() + j * stride, hd);
                    }
                    std::vector<float> p(static_cast<size_t>(n_kv));
                    for (int64_t j = 0; j < n_kv; ++j) p[j] = j % 5 == 1 ? 0.0f : 0.01f * (j + 1);
                    std::vector<float> out(static_cast<size_t>(hd), -3.0f), ref(src.size(), 0.0f);
                    (t == DType::Q8_0 ? f.pv_q8_0 : f.pv_q4_0)(hd, p.data(), V.data(), stride, n_kv,
                                                               out.data());
                    for (int64_t j = 0; j < n_kv; ++j) {
                        if (p[j] == 0.0f) continue;
                        dequantize_row(t, V.data() + j * stride, vr.data(), hd);
                        for (int64_t d = 0; d < hd; ++d) ref[d] += p[j] * vr[d];
                    }
                    for (int64_t d = 0; d < hd; ++d)
                        ASSERT_EQ(f32_bits(out[d]), f32_bits(ref[d]))
                            << f.name << " " << dtype_name(t) << " hd=" << hd << " n_kv=" << n_kv
                            << " d=" << d;
                }
}

TEST(Attention, SwigluBitIdenticalToScalar) {
    for (const AttnFns& f : levels()) {
        (void)f;
        for (int64_t n : {1, 7, 8, 9, 100, 4864}) {
            std::vector<float> g(static_cast<size_t>(n)), u(g.size()), y(g.size()), ref(g.size());
            for (int64_t i = 0; i < n; ++i) {
                g[i] = (static_cast<float>(i % 97) - 48.0f) * 0.37f;
                u[i] = std::cos(0.3f * static_cast<float>(i));
            }
            if (n > 3) g[2] = -120.0f, g[3] = 95.0f;  // exp over- and underflow
            for (int64_t i = 0; i < n; ++i) ref[i] = g[i] / (1.0f + exp_poly(-g[i])) * u[i];
            (f.isa == Isa::AVX2 ? avx2::swiglu_f32 : avx512vnni::swiglu_f32)(g.data(), u.data(),
                                                                             y.data(), n);
            for (int64_t i = 0; i < n; ++i)
                ASSERT_EQ(f32_bits(y[i]), f32_bits(ref[i])) << f.name << " n=" << n << " i=" << i;
        }
    }
}

TEST(Attention, AxpyF32BitIdenticalToScalarLoop) {
    for (const AttnFns& f : levels())
        for (int64_t n : {1, 7, 8, 9, 64, 77}) {
            std::vector<float> x(static_cast<size_t>(n)), y(x.size()), ref;
            for (int64_t i = 0; i < n; ++i) {
                x[i] = std::sin(0.37f * static_cast<float>(i)) * 3.1f;
                y[i] = std::cos(0.11f * static_cast<float>(i));
            }
            ref = y;
            const float a = 0.3183f;
            for (int64_t i = 0; i < n; ++i) ref[i] += a * x[i];
            f.axpy_f32(n, a, x.data(), y.data());
            for (int64_t i = 0; i < n; ++i) ASSERT_EQ(f32_bits(y[i]), f32_bits(ref[i])) << n;
        }
}
#endif

// attend() (active ISA) against a plain reference: the query in the K vec_dot type, scalar dots,
// std::exp softmax, probabilities rounded to F16 for F16 values, dequantized values.
TEST(Attention, AttendMatchesReferenceForCacheTypes) {
    for (DType ct : {DType::F16, DType::Q8_0, DType::Q4_0})
        for (int64_t hd : {32, 64, 96, 128})
            for (int64_t n_kv : {1, 6, 13, 257}) {
                if (ct == DType::F16 && hd == 32) continue;  // covered by 64/96 shapes
                std::mt19937 rng(static_cast<uint32_t>(hd * 7 + n_kv));
                std::normal_distribution<float> nd(0.0f, 1.0f);
                const size_t row = dtype_row_bytes(ct, hd);
                const size_t stride = row + 16;
                std::vector<uint8_t> K(stride * n_kv), V(stride * n_kv);
                std::vector<float> src(static_cast<size_t>(hd));
                for (int64_t j = 0; j < n_kv; ++j) {
                    for (auto& v : src) v = nd(rng) * 2.0f;
                    quantize_activation_row(ct, src.data(), K.data() + j * stride, hd);
                    for (auto& v : src) v = nd(rng);
                    quantize_activation_row(ct, src.data(), V.data() + j * stride, hd);
                }
                std::vector<float> q(static_cast<size_t>(hd));
                for (auto& v : q) v = nd(rng);
                const float scale = 1.0f / std::sqrt(static_cast<float>(hd));

                const DType qt = vec_dot_type(ct);
                std::vector<uint8_t> qc(dtype_row_bytes(qt, hd));
                scalar_kernels(qt).quantize_act
                    ? scalar_kernels(qt).quantize_act(q.data(), qc.data(), hd)
                    : scalar_kernels(qt).quantize(q.data(), qc.data(), hd);
                std::vector<double> s(static_cast<size_t>(n_kv));
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < n_kv; ++j) {
                    s[j] = scalar_kernels(ct).vec_dot(hd, K.data() + j * stride, qc.data()) * scale;
                    mx = std::max(mx, s[j]);
                }
                for (auto& v : s) sum += (v = std::exp(v - mx));
                std::vector<float> ref(static_cast<size_t>(hd), 0.0f), vr(ref.size());
                for (int64_t j = 0; j < n_kv; ++j) {
                    float p = static_cast<float>(s[j] / sum);
                    if (ct == DType::F16) p = round_fp16(p);
                    dequantize_row(ct, V.data() + j * stride, vr.data(), hd);
                    for (int64_t d = 0; d < hd; ++d) ref[d] += p * vr[d];
                }

                KVView kv;
                kv.k = K.data();
                kv.v = V.data();
                kv.k_stride = kv.v_stride = stride;
                kv.k_type = kv.v_type = ct;
                std::vector<float> out(static_cast<size_t>(hd), 99.0f);
                AttnScratch sc;
                attend(q.data(), hd, kv, n_kv, scale, out.data(), sc);
                for (int64_t d = 0; d < hd; ++d)
                    ASSERT_NEAR(out[d], ref[d], 2e-3f * (1.0f + std::fabs(ref[d])))
                        << dtype_name(ct) << " hd=" << hd << " n_kv=" << n_kv << " d=" << d;
            }
}

}  // namespace
}  // namespace duan::kernels
