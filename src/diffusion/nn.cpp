#include "diffusion/nn.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/fp16.h"

namespace duan::diffusion {

namespace {

// ---- GEMM micro-kernel: a 4×4 tile of dot products over a K range, with GCC vector types so the
// same source vectorizes for SSE2 (baseline), AVX2 and AVX-512 (function clones picked at load).
#pragma GCC diagnostic ignored "-Wpsabi"  // helpers below are always inlined into the clones
typedef float v8 __attribute__((vector_size(32)));

__attribute__((always_inline)) inline v8 load8(const float* p) {
    v8 v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}
__attribute__((always_inline)) inline float hsum(const v8& v) {
    return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DUAN_SD_CLONES                                                           \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), \
                   optimize("fp-contract=fast")))
#else
#define DUAN_SD_CLONES
#endif

// The GEMM micro-kernel: a 6×16 tile of C += A[6 rows][kn] · panel[kn][16] (outer products:
// broadcast one A element, multiply a 16-wide panel row; 12 accumulators stay in registers).
// `rows` < 6 repeats the last row pointer (results discarded by the caller).
DUAN_SD_CLONES
void kernel6x16(const float* const a[6], const float* panel, int64_t kn, float* c, int64_t ldc,
                int rows, int cols) {
    // Named accumulators (not an array) so they live in registers at -O2.
    v8 c00{}, c01{}, c10{}, c11{}, c20{}, c21{}, c30{}, c31{}, c40{}, c41{}, c50{}, c51{};
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    for (int64_t k = 0; k < kn; ++k) {
        const v8 b0 = load8(panel + k * 16), b1 = load8(panel + k * 16 + 8);
#define DUAN_ROW(ar, x0, x1)                            \
    {                                                   \
        const float av = ar[k];                         \
        const v8 va = {av, av, av, av, av, av, av, av}; \
        x0 += va * b0;                                  \
        x1 += va * b1;                                  \
    }
        DUAN_ROW(a0, c00, c01)
        DUAN_ROW(a1, c10, c11)
        DUAN_ROW(a2, c20, c21)
        DUAN_ROW(a3, c30, c31)
        DUAN_ROW(a4, c40, c41)
        DUAN_ROW(a5, c50, c51)
#undef DUAN_ROW
    }
    const v8 acc[6][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    for (int r = 0; r < rows; ++r) {
        float* cr = c + r * ldc;
        if (cols == 16) {
            v8 t0 = load8(cr) + acc[r][0], t1 = load8(cr + 8) + acc[r][1];
            __builtin_memcpy(cr, &t0, sizeof t0);
            __builtin_memcpy(cr + 8, &t1, sizeof t1);
        } else {
            for (int j = 0; j < cols; ++j) cr[j] += j < 8 ? acc[r][0][j] : acc[r][1][j - 8];
        }
    }
}

std::vector<uint16_t> make_table(bool quick) {
    std::vector<uint16_t> t(1 << 16);
    for (uint32_t i = 0; i < (1u << 16); ++i) {
        const float f = fp16_to_fp32(static_cast<uint16_t>(i));
        float y;
        if (quick) {
            y = f * (1.0f / (1.0f + expf(-1.702f * f)));
        } else {
            const float c = 0.79788456080286535587989211986876f;  // sqrt(2/pi)
            y = 0.5f * f * (1.0f + tanhf(c * f * (1.0f + 0.044715f * f * f)));
        }
        t[i] = fp32_to_fp16(y);
    }
    return t;
}

// exp(x) for 8 lanes: range reduction x = n·ln2 + r, |r| <= ln2/2, degree-6 polynomial for e^r,
// 2^n through the exponent bits. Max relative error ~2 ulp; inputs below -87 flush to 0.
__attribute__((always_inline)) inline v8 exp8(v8 x) {
    typedef int32_t i8v __attribute__((vector_size(32)));
    const v8 lo = {-87.0f, -87.0f, -87.0f, -87.0f, -87.0f, -87.0f, -87.0f, -87.0f};
    const v8 hi = {88.0f, 88.0f, 88.0f, 88.0f, 88.0f, 88.0f, 88.0f, 88.0f};
    const i8v under = x < lo;
    x = x < lo ? lo : x;
    x = x > hi ? hi : x;
    const v8 log2e = {1.44269504f, 1.44269504f, 1.44269504f, 1.44269504f,
                      1.44269504f, 1.44269504f, 1.44269504f, 1.44269504f};
    v8 t = x * log2e;
    // round to nearest: add and subtract 1.5·2^23
    const v8 magic = {12582912.0f, 12582912.0f, 12582912.0f, 12582912.0f,
                      12582912.0f, 12582912.0f, 12582912.0f, 12582912.0f};
    const v8 n = (t + magic) - magic;
    const v8 ln2hi = {0.693359375f, 0.693359375f, 0.693359375f, 0.693359375f,
                      0.693359375f, 0.693359375f, 0.693359375f, 0.693359375f};
    const v8 ln2lo = {-2.12194440e-4f, -2.12194440e-4f, -2.12194440e-4f, -2.12194440e-4f,
                      -2.12194440e-4f, -2.12194440e-4f, -2.12194440e-4f, -2.12194440e-4f};
    const v8 r = (x - n * ln2hi) - n * ln2lo;
    auto c = [](float f) { return v8{f, f, f, f, f, f, f, f}; };
    v8 y = c(1.9875691500e-4f);
    y = y * r + c(1.3981999507e-3f);
    y = y * r + c(8.3334519073e-3f);
    y = y * r + c(4.1665795894e-2f);
    y = y * r + c(1.6666665459e-1f);
    y = y * r + c(5.0000001201e-1f);
    y = y * r * r + r + c(1.0f);
    i8v ni = __builtin_convertvector(n, i8v);
    ni = (ni + 127) << 23;
    v8 pow2;
    __builtin_memcpy(&pow2, &ni, sizeof pow2);
    y = y * pow2;
    return under ? v8{} : y;
}

// In place s[j] = exp(s[j]·scale - max), returns the sum (as float).
DUAN_SD_CLONES
float softmax_exp_row(float* s, int64_t n, float scale) {
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; ++j) mx = std::max(mx, s[j] * scale);
    const v8 sc = {scale, scale, scale, scale, scale, scale, scale, scale};
    const v8 mv = {mx, mx, mx, mx, mx, mx, mx, mx};
    v8 acc{};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const v8 e = exp8(load8(s + j) * sc - mv);
        __builtin_memcpy(s + j, &e, sizeof e);
        acc += e;
    }
    float sum = hsum(acc);
    for (; j < n; ++j) {
        s[j] = std::exp(s[j] * scale - mx);
        sum += s[j];
    }
    return sum;
}

// x[i] *= sigmoid(x[i]) for 8 lanes at a time.
DUAN_SD_CLONES
void silu_row(float* x, int64_t n) {
    const v8 one = {1, 1, 1, 1, 1, 1, 1, 1};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const v8 v = load8(x + i);
        const v8 y = v / (one + exp8(-v));
        __builtin_memcpy(x + i, &y, sizeof y);
    }
    for (; i < n; ++i) x[i] = x[i] / (1.0f + std::exp(-x[i]));
}

// Runs fn(ith, nth) on the pool, or inline on this thread when the work (in multiply-adds or
// element operations) is too small to pay for waking the workers (a loaded machine can take
// milliseconds to schedule them; the tiny UNet levels have a few thousand operations).
void par(ThreadPool& pool, double work, const std::function<void(int, int)>& fn) {
    if (work < 2e5 || pool.size() == 1) {
        fn(0, 1);
    } else {
        pool.run(fn);
    }
}

void par_for(ThreadPool& pool, int64_t n, double work,
             const std::function<void(int64_t, int64_t)>& fn) {
    par(pool, work, [&](int ith, int nth) {
        const int64_t chunk = (n + nth - 1) / nth;
        const int64_t b = std::min<int64_t>(n, chunk * ith), e = std::min<int64_t>(n, b + chunk);
        if (b < e) fn(b, e);
    });
}

}  // namespace

float gelu_f16_table(float x) {
    static const std::vector<uint16_t> tab = make_table(false);
    if (x <= -10.0f) return 0.0f;
    if (x >= 10.0f) return x;
    return fp16_to_fp32(tab[fp32_to_fp16(x)]);
}

float quick_gelu_f16_table(float x) {
    static const std::vector<uint16_t> tab = make_table(true);
    return fp16_to_fp32(tab[fp32_to_fp16(x)]);
}

PackedW pack_weights(const float* w, int64_t n, int64_t k, bool round_in) {
    PackedW p;
    p.n = n;
    p.k = k;
    p.round_in = round_in;
    const int64_t panels = (n + 15) / 16;
    p.p.assign(static_cast<size_t>(panels * k * 16), 0.0f);
    for (int64_t j = 0; j < n; ++j) {
        float* dst = p.p.data() + (j / 16) * k * 16 + (j % 16);
        const float* src = w + j * k;
        for (int64_t kk = 0; kk < k; ++kk) dst[kk * 16] = src[kk];
    }
    return p;
}

namespace {
// C rows [i0,i1) × panels [q0,q1) of C = A·Wᵀ (+bias), on the calling thread. K in blocks of 256 so
// a panel slice (16 KB) stays in L1 while the 6-row tiles stream past it.
void gemm_block(int64_t i0, int64_t i1, int64_t q0, int64_t q1, const float* A, int64_t lda,
                const PackedW& w, float* C, int64_t ldc, const float* bias) {
    constexpr int64_t KB = 256;
    const int64_t N = w.n, K = w.k;
    const int64_t j0 = q0 * 16, j1 = std::min(N, q1 * 16);
    for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = j0; j < j1; ++j) C[i * ldc + j] = bias ? bias[j] : 0.0f;
    for (int64_t k0 = 0; k0 < K; k0 += KB) {
        const int64_t kn = std::min(KB, K - k0);
        for (int64_t q = q0; q < q1; ++q) {
            const float* panel = w.p.data() + q * K * 16 + k0 * 16;
            const int cols = static_cast<int>(std::min<int64_t>(16, N - q * 16));
            for (int64_t i = i0; i < i1; i += 6) {
                const int rows = static_cast<int>(std::min<int64_t>(6, i1 - i));
                const float* a[6];
                for (int r = 0; r < 6; ++r) a[r] = A + (i + std::min(r, rows - 1)) * lda + k0;
                kernel6x16(a, panel, kn, C + i * ldc + q * 16, ldc, rows, cols);
            }
        }
    }
}
}  // namespace

void gemm(ThreadPool& pool, int64_t M, const float* A, int64_t lda, const PackedW& w, float* C,
          int64_t ldc, const float* bias) {
    // Tasks: (block of 96 rows) × (block of 4 panels = 64 columns), taken dynamically.
    constexpr int64_t MB = 96, PB = 4;
    const int64_t panels = (w.n + 15) / 16;
    const int64_t nmb = (M + MB - 1) / MB, npb = (panels + PB - 1) / PB;
    const int64_t tasks = nmb * npb;
    std::atomic<int64_t> next{0};
    par(pool, static_cast<double>(M) * w.n * w.k, [&](int, int) {
        for (int64_t t = next++; t < tasks; t = next++) {
            const int64_t i0 = (t % nmb) * MB, q0 = (t / nmb) * PB;
            gemm_block(i0, std::min(M, i0 + MB), q0, std::min(panels, q0 + PB), A, lda, w, C, ldc,
                       bias);
        }
    });
}

namespace {
// y[M][N] = x[M][K] · Wᵀ (+ bias) with a weight used in place from the map.
void matmul_q(ThreadPool& pool, const kernels::Weight& w, const float* x, int64_t M, float* y,
              const float* bias) {
    kernels::matmul(w, x, M, y, pool);
    if (bias)
        for (int64_t m = 0; m < M; ++m)
            for (int64_t n = 0; n < w.n_rows; ++n) y[m * w.n_rows + n] += bias[n];
}
}  // namespace

std::vector<float> linear(ThreadPool& pool, const Linear& l, const float* x, int64_t T) {
    if (l.q.data) {
        std::vector<float> y(static_cast<size_t>(T * l.q.n_rows));
        matmul_q(pool, l.q, x, T, y.data(), l.b.empty() ? nullptr : l.b.data());
        return y;
    }
    const int64_t K = l.w.k, N = l.w.n;
    std::vector<float> xr;
    if (l.w.round_in) {
        xr.assign(x, x + T * K);
        for (auto& v : xr) v = round_fp16(v);
        x = xr.data();
    }
    std::vector<float> y(static_cast<size_t>(T * N));
    gemm(pool, T, x, K, l.w, y.data(), N, l.b.empty() ? nullptr : l.b.data());
    return y;
}

std::vector<float> conv2d(ThreadPool& pool, const Conv2d& c, const float* x, int H, int W,
                          int stride, int pad, int* OHp, int* OWp) {
    const int k = c.k;
    const int OH = (H + 2 * pad - k) / stride + 1, OW = (W + 2 * pad - k) / stride + 1;
    if (OHp) *OHp = OH;
    if (OWp) *OWp = OW;
    const int64_t P = static_cast<int64_t>(OH) * OW, K = static_cast<int64_t>(c.in) * k * k;
    std::vector<float> y(static_cast<size_t>(c.out * P));
    // The input rounded to f16 once, with a zero border of `pad`: im2col is then plain copies.
    const int PH = H + 2 * pad, PW = W + 2 * pad;
    std::vector<float> xp(static_cast<size_t>(c.in) * PH * PW, 0.0f);
    par_for(pool, c.in, static_cast<double>(c.in) * H * W, [&](int64_t c0, int64_t c1) {
        for (int64_t ci = c0; ci < c1; ++ci)
            for (int y = 0; y < H; ++y) {
                const float* src = x + (ci * H + y) * W;
                float* dst = xp.data() + (ci * PH + y + pad) * PW + pad;
                for (int xx = 0; xx < W; ++xx) dst[xx] = round_fp16(src[xx]);
            }
    });
    // im2col in chunks of pixels so the column buffer stays bounded (~16 MB) at any image size.
    const int64_t chunk =
        std::max<int64_t>(64, std::min<int64_t>(P, (4 << 20) / std::max<int64_t>(K, 1)));
    std::vector<float> col(static_cast<size_t>(chunk * K));
    std::vector<float> tmp(static_cast<size_t>(chunk * c.out));
    for (int64_t p0 = 0; p0 < P; p0 += chunk) {
        const int64_t pn = std::min(chunk, P - p0);
        par_for(pool, pn, static_cast<double>(pn) * K, [&](int64_t b, int64_t e) {
            for (int64_t pi = b; pi < e; ++pi) {
                const int64_t p = p0 + pi;
                const int oy = static_cast<int>(p / OW), ox = static_cast<int>(p % OW);
                float* dst = col.data() + pi * K;
                for (int ci = 0; ci < c.in; ++ci) {
                    const float* src = xp.data() +
                                       (static_cast<int64_t>(ci) * PH + oy * stride) * PW +
                                       ox * stride;
                    if (k == 1) {
                        *dst++ = *src;
                        continue;
                    }
                    for (int ky = 0; ky < k; ++ky, src += PW)
                        for (int kx = 0; kx < k; ++kx) *dst++ = src[kx];
                }
            }
        });
        // tmp[pn][out] = col[pn][K] · Wᵀ + bias, then scatter to y[out][p0..p0+pn)
        if (c.q.data)
            matmul_q(pool, c.q, col.data(), pn, tmp.data(), c.b.empty() ? nullptr : c.b.data());
        else
            gemm(pool, pn, col.data(), K, c.w, tmp.data(), c.out,
                 c.b.empty() ? nullptr : c.b.data());
        for (int o = 0; o < c.out; ++o) {
            float* yo = y.data() + static_cast<int64_t>(o) * P + p0;
            for (int64_t pi = 0; pi < pn; ++pi) yo[pi] = tmp[pi * c.out + o];
        }
    }
    return y;
}

void group_norm(ThreadPool& pool, float* x, int C, int64_t HW, int groups, float eps, const Norm& n,
                bool silu) {
    const int cg = C / groups;
    par_for(pool, groups, 8.0 * C * HW, [&](int64_t g0, int64_t g1) {
        for (int64_t g = g0; g < g1; ++g) {
            float* p = x + g * cg * HW;
            const int64_t cnt = cg * HW;
            double sum = 0;
            for (int64_t i = 0; i < cnt; ++i) sum += p[i];
            const float mean = static_cast<float>(sum / static_cast<double>(cnt));
            double sq = 0;
            for (int64_t i = 0; i < cnt; ++i) {
                const float d = p[i] - mean;
                sq += static_cast<double>(d * d);
            }
            const float var = static_cast<float>(sq / static_cast<double>(cnt));
            const float inv = 1.0f / std::sqrt(var + eps);
            for (int c = 0; c < cg; ++c) {
                const int ch = static_cast<int>(g) * cg + c;
                const float gg = n.g[ch], bb = n.b[ch];
                float* q = p + static_cast<int64_t>(c) * HW;
                for (int64_t i = 0; i < HW; ++i) q[i] = (q[i] - mean) * inv * gg + bb;
                if (silu) silu_row(q, HW);
            }
        }
    });
}

std::vector<float> layer_norm(const float* x, int64_t T, int64_t D, const Norm& n, float eps) {
    std::vector<float> y(static_cast<size_t>(T * D));
    for (int64_t t = 0; t < T; ++t) {
        const float* r = x + t * D;
        double s = 0;
        for (int64_t i = 0; i < D; ++i) s += r[i];
        const float mean = static_cast<float>(s / static_cast<double>(D));
        double sq = 0;
        for (int64_t i = 0; i < D; ++i) {
            const float d = r[i] - mean;
            sq += static_cast<double>(d * d);
        }
        const float inv = 1.0f / std::sqrt(static_cast<float>(sq / static_cast<double>(D)) + eps);
        float* o = y.data() + t * D;
        for (int64_t i = 0; i < D; ++i) o[i] = (r[i] - mean) * inv * n.g[i] + n.b[i];
    }
    return y;
}

void attention(ThreadPool& pool, const float* q, int64_t ldq, const float* k, int64_t ldk,
               const float* v, int64_t ldv, float* out, int64_t Lq, int64_t Lk, int heads, int dh,
               bool causal) {
    const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
    const int64_t C = static_cast<int64_t>(heads) * dh;
    // Per head: K packed as a GEMM weight (n = Lk, k = dh) and Vᵀ as one (n = dh, k = Lk). Query
    // blocks of 32 rows then do S = Q·Kᵀ (32 × Lk, the only score memory), a softmax per row,
    // and O = P·V, each block on one thread.
    constexpr int64_t QB = 32;
    const int64_t nqb = (Lq + QB - 1) / QB;
    std::vector<float> kh(static_cast<size_t>(Lk * dh)), vt(static_cast<size_t>(dh * Lk));
    for (int h = 0; h < heads; ++h) {
        for (int64_t j = 0; j < Lk; ++j)
            for (int d = 0; d < dh; ++d) {
                kh[j * dh + d] = k[j * ldk + h * dh + d];
                vt[d * Lk + j] = v[j * ldv + h * dh + d];
            }
        const PackedW kp = pack_weights(kh.data(), Lk, dh, false);
        const PackedW vp = pack_weights(vt.data(), dh, Lk, false);
        const int64_t vpanels = (dh + 15) / 16, kpanels = (Lk + 15) / 16;
        std::atomic<int64_t> next{0};
        par(pool, 4.0 * Lq * Lk * dh, [&](int, int) {
            std::vector<float> S(static_cast<size_t>(QB * Lk));
            std::vector<float> O(static_cast<size_t>(QB * dh));
            for (int64_t b = next++; b < nqb; b = next++) {
                const int64_t i0 = b * QB, rows = std::min(QB, Lq - i0);
                gemm_block(0, rows, 0, kpanels, q + i0 * ldq + h * dh, ldq, kp, S.data(), Lk,
                           nullptr);
                for (int64_t r = 0; r < rows; ++r) {
                    float* sr = S.data() + r * Lk;
                    const int64_t n = causal ? std::min<int64_t>(Lk, i0 + r + 1) : Lk;
                    const float inv = 1.0f / softmax_exp_row(sr, n, scale);
                    for (int64_t j = 0; j < n; ++j) sr[j] *= inv;
                    for (int64_t j = n; j < Lk; ++j) sr[j] = 0.0f;
                }
                gemm_block(0, rows, 0, vpanels, S.data(), Lk, vp, O.data(), dh, nullptr);
                for (int64_t r = 0; r < rows; ++r)
                    std::memcpy(out + (i0 + r) * C + h * dh, O.data() + r * dh, dh * sizeof(float));
            }
        });
    }
}

void silu_inplace(float* x, int64_t n) {
    silu_row(x, n);
}

std::vector<float> transpose(const float* x, int64_t rows, int64_t cols) {
    std::vector<float> y(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) y[c * rows + r] = x[r * cols + c];
    return y;
}

}  // namespace duan::diffusion
