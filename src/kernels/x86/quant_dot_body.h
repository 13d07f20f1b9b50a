// The x86 SIMD row kernels, written once with 256-bit AVX2 intrinsics and compiled twice (see
// x86_kernels.h): included by dot_avx2.cpp with DUAN_X86_VNNI 0 and by dot_avx512.cpp with
// DUAN_X86_VNNI 1, each defining DUAN_X86_NS (the namespace). With VNNI the u8×s8 dot of 32 bytes
// is one vpdpbusd instead of vpmaddubsw + vpmaddwd.
//
// Not a normal header: no include guard, only for those two files.
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "kernels/blocks.h"
#include "kernels/x86/x86_kernels.h"

namespace duan::kernels::DUAN_X86_NS {
namespace {

inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

inline int hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

inline float h2f(uint16_t h) {
    return _cvtsh_ss(h);
}

// acc + (sums of 4 adjacent u8×s8 products) as 8 int32. The maddubs form saturates int16 only for
// |u×s| pairs above 32767, which our operands (u <= 128, |s| <= 127) never reach.
inline __m256i dot_acc_u8s8(__m256i acc, __m256i u, __m256i s) {
#if DUAN_X86_VNNI
    return _mm256_dpbusd_epi32(acc, u, s);
#else
    return _mm256_add_epi32(acc,
                            _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}
inline __m256i dot_u8s8(__m256i u, __m256i s) {
    return dot_acc_u8s8(_mm256_setzero_si256(), u, s);
}
// Signed × signed: move x's sign onto y.
inline __m256i dot_s8s8(__m256i x, __m256i y) {
    return dot_u8s8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

// 16 bytes of nibbles -> 32 bytes: the low nibbles (elements 0..15), then the high (16..31).
inline __m256i nibbles32(const uint8_t* qs) {
    const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    const __m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

// Byte j = 0xFF where bit j of the 32-bit word is set.
inline __m256i bits_to_bytes(const uint8_t* p) {
    uint32_t x;
    std::memcpy(&x, p, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                           0x0101010101010101, 0x0000000000000000);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(x)), shuf);
    b = _mm256_or_si256(b, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1));
}

inline __m256i load256(const void* p) {
    return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// Two int16 scales: lanes 0..7 = a (elements 0..15 of a maddubs), lanes 8..15 = b.
inline __m256i scales2(int a, int b) {
    return _mm256_set_m128i(_mm_set1_epi16(static_cast<short>(b)),
                            _mm_set1_epi16(static_cast<short>(a)));
}

// sum(u8 q × s8 y) weighted per 16-element half by int16 scales (maddubs then madd).
inline __m256i scaled_dot(__m256i q, __m256i y, __m256i sc) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(q, y), sc);
}

// roundf (ties away from zero) exactly, for |x| < 2^23.
inline __m256 round_away(__m256 x) {
    const __m256 t = _mm256_round_ps(x, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0f));
    const __m256 frac = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(x, t));
    const __m256 step = _mm256_or_ps(_mm256_set1_ps(1.0f), sign);
    const __m256 ge = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    return _mm256_add_ps(t, _mm256_and_ps(ge, step));
}

// 4×8 int32 (each in [-128, 127]) -> 32 int8 in order.
inline __m256i pack_i32_to_i8(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i ab = _mm256_packs_epi32(a, b);
    const __m256i cd = _mm256_packs_epi32(c, d);
    const __m256i abcd = _mm256_packs_epi16(ab, cd);
    return _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

inline __m256 abs_ps(__m256 x) {
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
}

inline float hmax_ps(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// Q8_0/Q8_1 block: d = amax/127, q = roundf(x/d) as the scalar quantizer. Returns sum(q).
// kTiesEven: the activation form (scalar quantize_block_q8<true>): id = 127/amax, halves to even.
template <bool kTiesEven = false>
inline int quantize_block_q8(const float* x, int8_t* qs, float* d_out) {
    __m256 v[4];
    __m256 mx = _mm256_setzero_ps();
    for (int k = 0; k < 4; ++k) {
        v[k] = _mm256_loadu_ps(x + 8 * k);
        mx = _mm256_max_ps(mx, abs_ps(v[k]));
    }
    const float amax = hmax_ps(mx);
    const float d = amax / 127.0f;
    const float id =
        kTiesEven ? (amax != 0.0f ? 127.0f / amax : 0.0f) : (d != 0.0f ? 1.0f / d : 0.0f);
    const __m256 idv = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; ++k) {
        const __m256 p = _mm256_mul_ps(v[k], idv);
        q[k] = kTiesEven ? _mm256_cvtps_epi32(p)  // MXCSR default: round to nearest even
                         : _mm256_cvttps_epi32(round_away(p));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs), pack_i32_to_i8(q[0], q[1], q[2], q[3]));
    *d_out = d;
    return hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
}

// Q4_K / Q5_K 6-bit scales and mins (as scalar unpack_scale_min_k4).
inline void unpack_k4_scales(const uint8_t* s, int sc[8], int m[8]) {
    for (int j = 0; j < 4; ++j) {
        sc[j] = s[j] & 63;
        m[j] = s[j + 4] & 63;
    }
    for (int j = 4; j < 8; ++j) {
        sc[j] = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        m[j] = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

}  // namespace

// ---- float types
// ---------------------------------------------------------------------------------

float vec_dot_f32(int64_t n, const void* w, const void* act) {
    const auto* a = static_cast<const float*>(w);
    const auto* b = static_cast<const float*>(act);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), acc3);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
    for (; i < n; ++i) sum += a[i] * b[i];
    return sum;
}

namespace {
inline __m256 load_f16(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m256 load_bf16(const uint16_t* p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
}  // namespace

float vec_dot_f16(int64_t n, const void* w, const void* act) {
    const auto* a = static_cast<const uint16_t*>(w);
    const auto* b = static_cast<const uint16_t*>(act);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm256_fmadd_ps(load_f16(a + i), load_f16(b + i), acc0);
        acc1 = _mm256_fmadd_ps(load_f16(a + i + 8), load_f16(b + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(load_f16(a + i + 16), load_f16(b + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(load_f16(a + i + 24), load_f16(b + i + 24), acc3);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(load_f16(a + i), load_f16(b + i), acc0);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
    for (; i < n; ++i) sum += h2f(a[i]) * h2f(b[i]);
    return sum;
}

float vec_dot_bf16(int64_t n, const void* w, const void* act) {
    const auto* a = static_cast<const uint16_t*>(w);
    const auto* b = static_cast<const uint16_t*>(act);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm256_fmadd_ps(load_bf16(a + i), load_bf16(b + i), acc0);
        acc1 = _mm256_fmadd_ps(load_bf16(a + i + 8), load_bf16(b + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(load_bf16(a + i + 16), load_bf16(b + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(load_bf16(a + i + 24), load_bf16(b + i + 24), acc3);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(load_bf16(a + i), load_bf16(b + i), acc0);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
    for (; i < n; ++i) sum += bf16_to_fp32(a[i]) * bf16_to_fp32(b[i]);
    return sum;
}

void axpy_f16(int64_t n, float a, const uint16_t* x, float* y) {
    const __m256 av = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i,
                         _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_mul_ps(av, load_f16(x + i))));
    for (; i < n; ++i) y[i] += a * h2f(x[i]);
}

void quantize_f16(const float* src, void* dst, int64_t n) {
    auto* h = static_cast<uint16_t*>(dst);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(h + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; ++i) h[i] = fp32_to_fp16(src[i]);
}

// ---- legacy 32-element types
// ---------------------------------------------------------------------

namespace {

// Weight blocks as 32 unsigned bytes in element order, and the offset their quants carry:
// Q4_0 q in [0, 15] (value q - 8), Q5_0 q in [0, 31] (value q - 16), Q8_0 (VNNI only) x + 128.
inline __m256i u8_of(const block_q4_0& b) {
    return nibbles32(b.qs);
}
inline __m256i u8_of(const block_q5_0& b) {
    const __m256i hi = _mm256_and_si256(bits_to_bytes(b.qh), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(nibbles32(b.qs), hi);
}
inline __m256i u8_of(const block_q8_0& b) {
    return _mm256_xor_si256(load256(b.qs), _mm256_set1_epi8(static_cast<char>(0x80)));
}
template <class B>
constexpr int kOffset = 0;
template <>
constexpr int kOffset<block_q4_0> = 8;
template <>
constexpr int kOffset<block_q5_0> = 16;
template <>
constexpr int kOffset<block_q8_0> = 128;

// R weight rows (x[r]) times one Q8_0 activation row: out[r]. Per block the u8 weights are dotted
// with the s8 activations starting from -offset * (partial sums of the activations), which the R
// rows share; then scaled by d_w * d_a into per-row float lanes (one accumulator per row: the
// reference's order of float additions).
// `prefetch`: where the next group of rows starts (R rows of nb blocks, contiguous), or nullptr.
// Streaming several rows at once defeats the hardware prefetcher, so the R-row kernel requests
// the next group's lines itself, spread over its own blocks.
template <int R, class B>
inline void dot_rows_q8_0(int64_t nb, const B* const* x, const block_q8_0* y, float* out,
                          const char* prefetch = nullptr) {
    constexpr int NACC = R;  // one accumulator per row, as the reference sums its blocks
    __m256 acc[NACC];
#pragma GCC unroll 4
    for (int a = 0; a < NACC; ++a) acc[a] = _mm256_setzero_ps();
    const __m256i off = _mm256_set1_epi8(static_cast<char>(kOffset<B>));
    for (int64_t i = 0; i < nb; ++i) {
        if (prefetch) {
            const char* p = prefetch + i * R * sizeof(B);
            _mm_prefetch(p, _MM_HINT_T0);
            _mm_prefetch(p + 64, _MM_HINT_T0);
            if constexpr (R * sizeof(B) > 128) _mm_prefetch(p + 128, _MM_HINT_T0);
        }
        const __m256i qy = load256(y[i].qs);
        const __m256i neg = _mm256_sub_epi32(_mm256_setzero_si256(), dot_u8s8(off, qy));
        alignas(16) float dd[4];
        if constexpr (R == 1) {
            dd[0] = h2f(x[0][i].d) * h2f(y[i].d);
        } else {
            const __m128i h = _mm_setr_epi16(
                static_cast<short>(x[0][i].d), static_cast<short>(x[1][i].d),
                static_cast<short>(x[2][i].d), static_cast<short>(x[3][i].d), 0, 0, 0, 0);
            _mm_store_ps(dd, _mm_mul_ps(_mm_cvtph_ps(h), _mm_set1_ps(h2f(y[i].d))));
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) {
            const __m256i s = dot_acc_u8s8(neg, u8_of(x[r][i]), qy);
            acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(&dd[r]), _mm256_cvtepi32_ps(s), acc[r]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) out[r] = hsum_ps(acc[r]);
}

template <class B>
inline float dot1(int64_t n, const void* w, const void* act) {
    const B* x[1] = {static_cast<const B*>(w)};
    float out;
    dot_rows_q8_0<1>(n / QK8_0, x, static_cast<const block_q8_0*>(act), &out);
    return out;
}

template <class B>
inline void dot4(int64_t n, const void* w, size_t stride, const void* act, float* out) {
    const auto* base = static_cast<const uint8_t*>(w);
    const B* x[4];
    for (int r = 0; r < 4; ++r) x[r] = reinterpret_cast<const B*>(base + r * stride);
    // rows contiguous (the usual case): fetch the next 4 rows ahead
    const char* next = stride == static_cast<size_t>(n / QK8_0) * sizeof(B)
                           ? reinterpret_cast<const char*>(base + 4 * stride)
                           : nullptr;
    dot_rows_q8_0<4>(n / QK8_0, x, static_cast<const block_q8_0*>(act), out, next);
}

}  // namespace

float vec_dot_q4_0_q8_0(int64_t n, const void* w, const void* act) {
    return dot1<block_q4_0>(n, w, act);
}
void vec_dot4_q4_0_q8_0(int64_t n, const void* w, size_t stride, const void* act, float* out) {
    dot4<block_q4_0>(n, w, stride, act, out);
}
float vec_dot_q5_0_q8_0(int64_t n, const void* w, const void* act) {
    return dot1<block_q5_0>(n, w, act);
}
void vec_dot4_q5_0_q8_0(int64_t n, const void* w, size_t stride, const void* act, float* out) {
    dot4<block_q5_0>(n, w, stride, act, out);
}

#if DUAN_X86_VNNI
float vec_dot_q8_0_q8_0(int64_t n, const void* w, const void* act) {
    return dot1<block_q8_0>(n, w, act);
}
void vec_dot4_q8_0_q8_0(int64_t n, const void* w, size_t stride, const void* act, float* out) {
    dot4<block_q8_0>(n, w, stride, act, out);
}
#else
// Without VNNI the +128 trick would saturate vpmaddubsw: signed × signed via the sign trick.
float vec_dot_q8_0_q8_0(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q8_0*>(w);
    const auto* y = static_cast<const block_q8_0*>(act);
    const int64_t nb = n / QK8_0;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; ++i) {
        const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
        const __m256 p = _mm256_cvtepi32_ps(dot_s8s8(load256(x[i].qs), load256(y[i].qs)));
        acc = _mm256_fmadd_ps(d, p, acc);
    }
    return hsum_ps(acc);
}

void vec_dot4_q8_0_q8_0(int64_t n, const void* w, size_t stride, const void* act, float* out) {
    const auto* y = static_cast<const block_q8_0*>(act);
    const auto* base = static_cast<const uint8_t*>(w);
    const block_q8_0* x[4];
    for (int r = 0; r < 4; ++r) x[r] = reinterpret_cast<const block_q8_0*>(base + r * stride);
    const int64_t nb = n / QK8_0;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    for (int64_t i = 0; i < nb; ++i) {
        const __m256i qy = load256(y[i].qs);
        const float dy = h2f(y[i].d);
        for (int r = 0; r < 4; ++r) {
            const __m256 d = _mm256_set1_ps(h2f(x[r][i].d) * dy);
            const __m256 p = _mm256_cvtepi32_ps(dot_s8s8(load256(x[r][i].qs), qy));
            acc[r] = _mm256_fmadd_ps(d, p, acc[r]);
        }
    }
    for (int r = 0; r < 4; ++r) out[r] = hsum_ps(acc[r]);
}

#endif

float vec_dot_q4_1_q8_1(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q4_1*>(w);
    const auto* y = static_cast<const block_q8_1*>(act);
    const int64_t nb = n / QK8_1;
    __m256 acc = _mm256_setzero_ps();
    float summ = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
        const __m256 p = _mm256_cvtepi32_ps(dot_u8s8(nibbles32(x[i].qs), load256(y[i].qs)));
        acc = _mm256_fmadd_ps(d, p, acc);
        summ += h2f(x[i].m) * h2f(y[i].s);
    }
    return hsum_ps(acc) + summ;
}

float vec_dot_q5_1_q8_1(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q5_1*>(w);
    const auto* y = static_cast<const block_q8_1*>(act);
    const int64_t nb = n / QK8_1;
    __m256 acc = _mm256_setzero_ps();
    float summ = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
        const __m256i hi = _mm256_and_si256(bits_to_bytes(x[i].qh), _mm256_set1_epi8(0x10));
        const __m256i qx = _mm256_or_si256(nibbles32(x[i].qs), hi);
        const __m256 p = _mm256_cvtepi32_ps(dot_u8s8(qx, load256(y[i].qs)));
        acc = _mm256_fmadd_ps(d, p, acc);
        summ += h2f(x[i].m) * h2f(y[i].s);
    }
    return hsum_ps(acc) + summ;
}

void quantize_q8_0(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<block_q8_0*>(dst);
    for (int64_t i = 0; i < n / QK8_0; ++i, src += QK8_0) {
        float d;
        quantize_block_q8(src, b[i].qs, &d);
        b[i].d = fp32_to_fp16(d);
    }
}

void quantize_q8_0_act(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<block_q8_0*>(dst);
    for (int64_t i = 0; i < n / QK8_0; ++i, src += QK8_0) {
        float d;
        quantize_block_q8<true>(src, b[i].qs, &d);
        b[i].d = fp32_to_fp16(d);
    }
}

void quantize_q8_1_act(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<block_q8_1*>(dst);
    for (int64_t i = 0; i < n / QK8_1; ++i, src += QK8_1) {
        float d;
        const int sum = quantize_block_q8<true>(src, b[i].qs, &d);
        b[i].d = fp32_to_fp16(d);
        b[i].s = fp32_to_fp16(static_cast<float>(sum) * d);
    }
}

void quantize_q8_1(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<block_q8_1*>(dst);
    for (int64_t i = 0; i < n / QK8_1; ++i, src += QK8_1) {
        float d;
        const int sum = quantize_block_q8(src, b[i].qs, &d);
        b[i].d = fp32_to_fp16(d);
        b[i].s = fp32_to_fp16(static_cast<float>(sum) * d);
    }
}

// ---- K-quants: exact integer sums per super-block, then the scalar reference's float expression

void quantize_q8_K(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<block_q8_K*>(dst);
    for (int64_t i = 0; i < n / QK_K; ++i, src += QK_K) {
        __m256 mx = _mm256_setzero_ps();
        for (int k = 0; k < QK_K; k += 8) mx = _mm256_max_ps(mx, abs_ps(_mm256_loadu_ps(src + k)));
        const float amax = hmax_ps(mx);
        if (!(amax > 0.0f)) {  // all zero (the scalar reference's only special case)
            std::memset(&b[i], 0, sizeof(block_q8_K));
            continue;
        }
        // The first element of largest magnitude gives the sign (the reference's strict '>').
        float max = 0.0f;
        const __m256 am = _mm256_set1_ps(amax);
        for (int k = 0; k < QK_K; k += 8) {
            const int mask =
                _mm256_movemask_ps(_mm256_cmp_ps(abs_ps(_mm256_loadu_ps(src + k)), am, _CMP_EQ_OQ));
            if (mask) {
                max = src[k + __builtin_ctz(static_cast<unsigned>(mask))];
                break;
            }
        }
        const float iscale = -127.0f / max;
        const __m256 is = _mm256_set1_ps(iscale);
        const __m256i cap = _mm256_set1_epi32(127);
        for (int k = 0; k < QK_K; k += 32) {
            __m256i q[4];
            for (int t = 0; t < 4; ++t)
                q[t] = _mm256_min_epi32(
                    _mm256_cvtps_epi32(_mm256_mul_ps(is, _mm256_loadu_ps(src + k + 8 * t))), cap);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(b[i].qs + k),
                                pack_i32_to_i8(q[0], q[1], q[2], q[3]));
            b[i].bsums[k / 16] = static_cast<int16_t>(hsum_epi32(_mm256_add_epi32(q[0], q[1])));
            b[i].bsums[k / 16 + 1] = static_cast<int16_t>(hsum_epi32(_mm256_add_epi32(q[2], q[3])));
        }
        b[i].d = 1.0f / iscale;
    }
}

float vec_dot_q2_K_q8_K(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q2_K*>(w);
    const auto* y = static_cast<const block_q8_K*>(act);
    const __m256i m3 = _mm256_set1_epi8(3);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const uint8_t* sc = x[i].scales;
        __m256i acc = _mm256_setzero_si256();
        for (int g = 0; g < 2; ++g) {
            const __m256i q = load256(x[i].qs + 32 * g);
            for (int s = 0; s < 4; ++s) {
                const __m256i qs = _mm256_and_si256(_mm256_srli_epi16(q, 2 * s), m3);
                const int j = 8 * g + 2 * s;
                acc = _mm256_add_epi32(acc, scaled_dot(qs, load256(y[i].qs + 128 * g + 32 * s),
                                                       scales2(sc[j] & 0xF, sc[j + 1] & 0xF)));
            }
        }
        int summ = 0;
        for (int j = 0; j < 16; ++j) summ += (sc[j] >> 4) * y[i].bsums[j];
        const int sumi = hsum_epi32(acc);
        const float dall = y[i].d * h2f(x[i].d);
        const float dmin = y[i].d * h2f(x[i].dmin);
        sum += dall * static_cast<float>(sumi) - dmin * static_cast<float>(summ);
    }
    return sum;
}

float vec_dot_q3_K_q8_K(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q3_K*>(w);
    const auto* y = static_cast<const block_q8_K*>(act);
    const __m256i m3 = _mm256_set1_epi8(3);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const uint8_t* ps = x[i].scales;
        int sc[16];
        for (int j = 0; j < 16; ++j) {
            const int low = j < 8 ? (ps[j] & 0xF) : (ps[j - 8] >> 4);
            const int high = (ps[8 + j % 4] >> (2 * (j / 4))) & 3;
            sc[j] = (low | (high << 4)) - 32;
        }
        const __m256i hm = load256(x[i].hmask);
        __m256i acc = _mm256_setzero_si256();
        for (int g = 0; g < 2; ++g) {
            const __m256i q = load256(x[i].qs + 32 * g);
            for (int s = 0; s < 4; ++s) {
                // unsigned q + 4 = low 2 bits | hmask bit (4g + s) << 2, in [0, 7]
                const __m256i bit = _mm256_set1_epi8(static_cast<char>(1 << (4 * g + s)));
                const __m256i h = _mm256_and_si256(
                    _mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), bit), _mm256_set1_epi8(4));
                const __m256i qs =
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 2 * s), m3), h);
                const int j = 8 * g + 2 * s;
                acc = _mm256_add_epi32(acc, scaled_dot(qs, load256(y[i].qs + 128 * g + 32 * s),
                                                       scales2(sc[j], sc[j + 1])));
            }
        }
        int corr = 0;  // the -4 offset: sum_j sc_j * 4 * bsums_j
        for (int j = 0; j < 16; ++j) corr += sc[j] * y[i].bsums[j];
        const int sumi = hsum_epi32(acc) - 4 * corr;
        sum += h2f(x[i].d) * y[i].d * static_cast<float>(sumi);
    }
    return sum;
}

namespace {
// Q4_K / Q5_K super-block tail: the scalar reference's float expression.
inline float k4_block_result(int sumi, const int sc_m[8], const block_q8_K& y, uint16_t d,
                             uint16_t dmin) {
    int summ = 0;
    for (int j = 0; j < 8; ++j) summ += sc_m[j] * (y.bsums[2 * j] + y.bsums[2 * j + 1]);
    return h2f(d) * y.d * static_cast<float>(sumi) - h2f(dmin) * y.d * static_cast<float>(summ);
}
}  // namespace

float vec_dot_q4_K_q8_K(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q4_K*>(w);
    const auto* y = static_cast<const block_q8_K*>(act);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        int sc[8], m[8];
        unpack_k4_scales(x[i].scales, sc, m);
        __m256i acc = _mm256_setzero_si256();
        for (int g = 0; g < 4; ++g) {
            const __m256i q = load256(x[i].qs + 32 * g);
            const __m256i lo = _mm256_and_si256(q, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            const __m256i p0 = scaled_dot(lo, load256(y[i].qs + 64 * g),
                                          _mm256_set1_epi16(static_cast<short>(sc[2 * g])));
            const __m256i p1 = scaled_dot(hi, load256(y[i].qs + 64 * g + 32),
                                          _mm256_set1_epi16(static_cast<short>(sc[2 * g + 1])));
            acc = _mm256_add_epi32(acc, _mm256_add_epi32(p0, p1));
        }
        sum += k4_block_result(hsum_epi32(acc), m, y[i], x[i].d, x[i].dmin);
    }
    return sum;
}

float vec_dot_q5_K_q8_K(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q5_K*>(w);
    const auto* y = static_cast<const block_q8_K*>(act);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i b4 = _mm256_set1_epi8(0x10);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        int sc[8], m[8];
        unpack_k4_scales(x[i].scales, sc, m);
        const __m256i qh = load256(x[i].qh);
        __m256i acc = _mm256_setzero_si256();
        for (int g = 0; g < 4; ++g) {
            const __m256i q = load256(x[i].qs + 32 * g);
            const __m256i bl = _mm256_set1_epi8(static_cast<char>(1 << (2 * g)));
            const __m256i bh = _mm256_set1_epi8(static_cast<char>(1 << (2 * g + 1)));
            const __m256i hl =
                _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bl), bl), b4);
            const __m256i hh =
                _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bh), bh), b4);
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(q, m4), hl);
            const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), hh);
            const __m256i p0 = scaled_dot(lo, load256(y[i].qs + 64 * g),
                                          _mm256_set1_epi16(static_cast<short>(sc[2 * g])));
            const __m256i p1 = scaled_dot(hi, load256(y[i].qs + 64 * g + 32),
                                          _mm256_set1_epi16(static_cast<short>(sc[2 * g + 1])));
            acc = _mm256_add_epi32(acc, _mm256_add_epi32(p0, p1));
        }
        sum += k4_block_result(hsum_epi32(acc), m, y[i], x[i].d, x[i].dmin);
    }
    return sum;
}

float vec_dot_q6_K_q8_K(int64_t n, const void* w, const void* act) {
    const auto* x = static_cast<const block_q6_K*>(w);
    const auto* y = static_cast<const block_q8_K*>(act);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i m3 = _mm256_set1_epi8(3);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const int8_t* sc = x[i].scales;
        __m256i acc = _mm256_setzero_si256();
        for (int g = 0; g < 2; ++g) {
            const __m256i l0 = load256(x[i].ql + 64 * g);
            const __m256i l1 = load256(x[i].ql + 64 * g + 32);
            const __m256i qh = load256(x[i].qh + 32 * g);
            __m256i q[4];
            q[0] = _mm256_and_si256(l0, m4);
            q[1] = _mm256_and_si256(l1, m4);
            q[2] = _mm256_and_si256(_mm256_srli_epi16(l0, 4), m4);
            q[3] = _mm256_and_si256(_mm256_srli_epi16(l1, 4), m4);
            for (int s = 0; s < 4; ++s) {
                // unsigned q + 32 in [0, 63]; the -32 comes back through bsums below
                const __m256i h =
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * s), m3), 4);
                const __m256i qs = _mm256_or_si256(q[s], h);
                const int j = 8 * g + 2 * s;
                acc = _mm256_add_epi32(acc, scaled_dot(qs, load256(y[i].qs + 128 * g + 32 * s),
                                                       scales2(sc[j], sc[j + 1])));
            }
        }
        int corr = 0;
        for (int j = 0; j < 16; ++j) corr += sc[j] * y[i].bsums[j];
        const int sumi = hsum_epi32(acc) - 32 * corr;
        sum += h2f(x[i].d) * y[i].d * static_cast<float>(sumi);
    }
    return sum;
}

}  // namespace duan::kernels::DUAN_X86_NS
