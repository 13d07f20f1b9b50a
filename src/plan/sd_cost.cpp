// FLOPs and activation peaks of the SD components (sd_arch.h). The activation simulation follows
// the code buffer by buffer: unet.cpp (forward, run_res, run_attn), vae.cpp (decode),
// vae_tiled.cpp, nn.cpp (conv2d's padded f16 input + 16 MB im2col chunk + output, linear's output
// and the activation copy its matmul makes, attention's per-head K/Vᵀ copies, packed, and 32-row
// score tiles per thread). Small vectors (norm statistics, the timestep embedding) are left out.
#include <algorithm>
#include <cmath>

#include "plan/sd_arch.h"

namespace duan::plan {

using diffusion::UNetConfig;

namespace {
constexpr double F = 4.0;  // bytes per f32 activation

// --------------------------------- FLOPs ---------------------------------
double conv_flops(double in, double out, double k, double OH, double OW) {
    return 2.0 * OH * OW * in * k * k * out;
}
double lin_flops(double in, double out, double n) {
    return 2.0 * n * in * out;
}

double res_flops(double in, double out, double HW) {
    return conv_flops(in, out, 3, HW, 1) + conv_flops(out, out, 3, HW, 1) +
           (in != out ? conv_flops(in, out, 1, HW, 1) : 0);
}

// *qk collects the score FLOPs (Q·Kᵀ and P·V: 4·head_dim per score), timed at the attention rate.
double attn_flops(const UNetConfig& u, double C, int depth, double T, double L, double* qk) {
    double f = 2 * lin_flops(C, C, T);  // proj_in, proj_out (1×1 conv or Linear: the same)
    for (int d = 0; d < depth; ++d) {
        *qk += 4.0 * T * T * C + 4.0 * T * L * C;
        f += 4 * lin_flops(C, C, T) + 4.0 * T * T * C;  // self
        f +=
            2 * lin_flops(C, C, T) + 2 * lin_flops(u.context_dim, C, L) + 4.0 * T * L * C;  // cross
        f += lin_flops(C, 8 * C, T) + lin_flops(4 * C, C, T);  // GEGLU FF
    }
    return f;
}
}  // namespace

double sd_unet_flops(const UNetConfig& u, int h, int w, int ctx_tokens, double* attn) {
    double qk_local = 0;
    double* qk = attn ? attn : &qk_local;
    *qk = 0;
    const int mc = u.model_channels, levels = static_cast<int>(u.mult.size());
    const double L = ctx_tokens;
    double H = h, W = w;
    double f = conv_flops(4, mc, 3, H, W);
    std::vector<int> chans = {mc};
    int ch = mc;
    for (int l = 0; l < levels; ++l) {
        for (int r = 0; r < u.num_res_blocks; ++r) {
            f += res_flops(ch, u.mult[l] * mc, H * W);
            ch = u.mult[l] * mc;
            if (u.depth[l] > 0) f += attn_flops(u, ch, u.depth[l], H * W, L, qk);
            chans.push_back(ch);
        }
        if (l != levels - 1) {
            H /= 2, W /= 2;
            f += conv_flops(ch, ch, 3, H, W);
            chans.push_back(ch);
        }
    }
    f += 2 * res_flops(ch, ch, H * W) + attn_flops(u, ch, u.mid_depth, H * W, L, qk);
    for (int l = levels - 1; l >= 0; --l)
        for (int i = 0; i <= u.num_res_blocks; ++i) {
            const int ich = chans.back();
            chans.pop_back();
            f += res_flops(ch + ich, mc * u.mult[l], H * W);
            ch = mc * u.mult[l];
            if (u.depth[l] > 0) f += attn_flops(u, ch, u.depth[l], H * W, L, qk);
            if (l > 0 && i == u.num_res_blocks) {
                H *= 2, W *= 2;
                f += conv_flops(ch, ch, 3, H, W);
            }
        }
    return f + conv_flops(mc, 4, 3, H, W);
}

double sd_text_flops(const SdTextArch& t, int chunks) {
    const double T = 77.0, D = t.dim;
    const double layer = lin_flops(D, 3 * D, T) + lin_flops(D, D, T) + 4.0 * T * T * D +
                         lin_flops(D, t.mlp, T) + lin_flops(t.mlp, D, T);
    return chunks * t.layers_run * layer;
}

namespace {
double vae_flops_untiled(const SdVaeArch& v, double H, double W, double* qk) {
    const double bi = 4.0 * v.dec_ch;
    *qk = 4.0 * (H * W) * (H * W) * bi;
    double f = conv_flops(4, 4, 1, H, W) + conv_flops(4, bi, 3, H, W);
    f += 2 * res_flops(bi, bi, H * W);
    f += 4 * lin_flops(bi, bi, H * W) + 4.0 * (H * W) * (H * W) * bi;  // mid attention
    static constexpr int kMult[4] = {1, 2, 4, 4};
    double bin = bi;
    for (int i = 3; i >= 0; --i) {
        for (int j = 0; j < 3; ++j) {
            f += res_flops(bin, v.dec_ch * kMult[i], H * W);
            bin = v.dec_ch * kMult[i];
        }
        if (i != 0) {
            H *= 2, W *= 2;
            f += conv_flops(bin, bin, 3, H, W);
        }
    }
    return f + conv_flops(bin, 3, 3, H, W);
}

// vae_tiled.cpp: tiles of 32 latent pixels every 24, the last aligned to the edge.
int tiles_along(int n) {
    if (n <= 32) return 1;
    int k = 1;
    for (int p = 0; p + 32 < n; p += 24) ++k;
    return k;
}
bool tiled(int h, int w) {
    return h * w > 64 * 64 && (h > 32 || w > 32);
}
}  // namespace

double sd_vae_decode_flops(const SdVaeArch& v, int h, int w, double* attn) {
    double qk = 0;
    double f;
    if (!tiled(h, w)) {
        f = vae_flops_untiled(v, h, w, &qk);
    } else {
        const int n = tiles_along(h) * tiles_along(w);
        f = n * vae_flops_untiled(v, std::min(h, 32), std::min(w, 32), &qk);
        qk *= n;
    }
    if (attn) *attn = qk;
    return f;
}

// ------------------------------ activation peaks ------------------------------
namespace {
struct Mem {
    double cur = 0, peak = 0;
    void add(double b) {
        cur += b;
        peak = std::max(peak, cur);
    }
    void sub(double b) { cur -= b; }
    void spike(double b) {  // allocated and freed inside a call
        add(b);
        sub(b);
    }
};

// nn.cpp conv2d: leaves the output [out][OH·OW] live; returns its bytes.
double conv(Mem& m, double in, double out, double H, double W, int k, int stride, double act) {
    const int pad = k == 3 ? 1 : 0;
    const double OH = std::floor((H + 2 * pad - k) / stride) + 1,
                 OW = std::floor((W + 2 * pad - k) / stride) + 1;
    const double P = OH * OW, K = in * k * k;
    const double chunk = std::max(64.0, std::min(P, std::floor((4 << 20) / K)));
    const double y = out * P * F;
    m.add(y);
    m.spike(in * (H + 2 * pad) * (W + 2 * pad) * F + chunk * K * (F + act) + chunk * out * F);
    return y;
}
// nn.cpp linear: output [n][out] live, the activation copy only during the call.
double lin(Mem& m, double in, double out, double n, double act) {
    const double y = n * out * F;
    m.add(y);
    m.spike(n * in * act);
    return y;
}
// nn.cpp attention: K and Vᵀ of one head copied and packed (panels of 16), a 32 × Lk score tile
// and a 32 × dh output per thread.
void attention(Mem& m, double Lq, double Lk, double heads, double dh, int threads) {
    (void)Lq;
    (void)heads;
    const double pk = std::ceil(Lk / 16) * 16 * dh, pv = std::ceil(dh / 16) * 16 * Lk;
    m.spike((2 * Lk * dh + pk + pv) * F + threads * 32.0 * (Lk + dh) * F);
}

// unet.cpp run_res / vae.cpp run_res: x [in][HW] live before, [out][HW] after.
void res(Mem& m, double in, double out, double H, double W, double act) {
    const double HW = H * W;
    m.add(in * HW * F);  // h = x
    conv(m, in, out, H, W, 3, 1, act);
    m.sub(in * HW * F);
    conv(m, out, out, H, W, 3, 1, act);
    m.sub(out * HW * F);
    if (in != out) {
        conv(m, in, out, H, W, 1, 1, act);
        m.sub(in * HW * F);  // x = skip(x): the old x goes
    }
    m.sub(out * HW * F);  // h (after the swap: the old x) goes at return
}

void unet_attn(Mem& m, const UNetConfig& u, double C, int depth, double T, double L, int threads,
               double act) {
    const double heads = u.heads(static_cast<int>(C)), dh = C / heads, TC = T * C * F;
    m.add(TC);  // h = x
    if (u.linear_proj) {
        m.add(TC);  // tok = transpose(h)
        lin(m, C, C, T, act);
        m.sub(TC);
    } else {
        conv(m, C, C, T, 1, 1, 1, act);
        m.sub(TC);
        m.add(TC);  // tok
    }
    m.add(TC);  // att
    for (int d = 0; d < depth; ++d) {
        m.add(TC);  // n
        for (int i = 0; i < 3; ++i) lin(m, C, C, T, act);
        attention(m, T, T, heads, dh, threads);
        m.spike(lin(m, C, C, T, act));
        m.sub(TC);
        m.sub(4 * TC);
        m.add(TC);  // n
        lin(m, C, C, T, act);
        lin(m, u.context_dim, C, L, act);
        lin(m, u.context_dim, C, L, act);
        attention(m, T, L, heads, dh, threads);
        m.spike(lin(m, C, C, T, act));
        m.sub(TC);
        m.sub(2 * TC + 2 * L * C * F);
        m.add(TC);                 // n
        lin(m, C, 8 * C, T, act);  // g [T][8C]
        m.add(4 * TC);             // y [T][4C]
        m.spike(lin(m, 4 * C, C, T, act));
        m.sub(TC);
        m.sub(TC + 8 * TC + 4 * TC);
    }
    if (u.linear_proj) {
        lin(m, C, C, T, act);
        m.sub(TC);  // old tok
        m.add(TC);  // h = transpose
        m.sub(TC);  // old h
    } else {
        m.add(TC);  // h = transpose(tok)
        m.sub(TC);
        conv(m, C, C, T, 1, 1, 1, act);
        m.sub(TC);
    }
    m.sub(3 * TC);  // h, tok, att
}
}  // namespace

uint64_t sd_unet_activation_peak(const UNetConfig& u, int h, int w, int ctx_tokens, int threads,
                                 double act) {
    Mem m;
    const int mc = u.model_channels, levels = static_cast<int>(u.mult.size());
    const double L = ctx_tokens;
    double H = h, W = w;
    // The sampler's buffers (x, the UNet input, eps cond and uncond, denoised) and the context.
    m.add(6.0 * 4 * h * w * F + 2 * L * u.context_dim * F);
    conv(m, 4, mc, H, W, 3, 1, act);
    std::vector<double> skips = {mc * H * W * F};
    m.add(skips.back());
    double ch = mc;
    for (int l = 0; l < levels; ++l) {
        for (int r = 0; r < u.num_res_blocks; ++r) {
            res(m, ch, u.mult[l] * mc, H, W, act);
            ch = u.mult[l] * mc;
            if (u.depth[l] > 0) unet_attn(m, u, ch, u.depth[l], H * W, L, threads, act);
            skips.push_back(ch * H * W * F);
            m.add(skips.back());
        }
        if (l != levels - 1) {
            const double old = ch * H * W * F;
            conv(m, ch, ch, H, W, 3, 2, act);
            m.sub(old);
            H /= 2, W /= 2;
            skips.push_back(ch * H * W * F);
            m.add(skips.back());
        }
    }
    res(m, ch, ch, H, W, act);
    unet_attn(m, u, ch, u.mid_depth, H * W, L, threads, act);
    res(m, ch, ch, H, W, act);
    for (int l = levels - 1; l >= 0; --l)
        for (int i = 0; i <= u.num_res_blocks; ++i) {
            const double s = skips.back();
            skips.pop_back();
            // x.insert(skip): a new buffer of both, then the old x and the skip go.
            m.add(ch * H * W * F + s);
            m.sub(ch * H * W * F);
            m.sub(s);
            const double ich = s / (H * W * F);
            res(m, ch + ich, mc * u.mult[l], H, W, act);
            ch = mc * u.mult[l];
            if (u.depth[l] > 0) unet_attn(m, u, ch, u.depth[l], H * W, L, threads, act);
            if (l > 0 && i == u.num_res_blocks) {
                m.add(4 * ch * H * W * F);  // u: nearest ×2
                conv(m, ch, ch, 2 * H, 2 * W, 3, 1, act);
                m.sub(ch * H * W * F + 4 * ch * H * W * F);
                H *= 2, W *= 2;
            }
        }
    conv(m, mc, 4, H, W, 3, 1, act);
    return static_cast<uint64_t>(m.peak);
}

namespace {
// vae.cpp decode of an h×w latent (one tile or the whole picture); m.cur rises by the image.
void vae_decode(Mem& m, const SdVaeArch& v, double H, double W, int threads) {
    const double bi = 4.0 * v.dec_ch;
    conv(m, 4, 4, H, W, 1, 1, 0);
    conv(m, 4, bi, H, W, 3, 1, 0);
    m.sub(4 * H * W * F);
    res(m, bi, bi, H, W, 0);
    {
        const double T = H * W, TC = T * bi * F;
        m.add(TC);                     // h
        for (int i = 0; i < 3; ++i) {  // q, k, v: conv then transpose
            conv(m, bi, bi, T, 1, 1, 1, 0);
            m.add(TC);
            m.sub(TC);
        }
        m.add(TC);  // a
        attention(m, T, T, 1, bi, threads);
        m.add(TC);  // h = transpose(a)
        m.sub(TC);
        conv(m, bi, bi, T, 1, 1, 1, 0);
        m.sub(TC);
        m.sub(5 * TC);  // h, q, k, v, a
    }
    res(m, bi, bi, H, W, 0);
    static constexpr int kMult[4] = {1, 2, 4, 4};
    double bin = bi;
    for (int i = 3; i >= 0; --i) {
        for (int j = 0; j < 3; ++j) {
            res(m, bin, v.dec_ch * kMult[i], H, W, 0);
            bin = v.dec_ch * kMult[i];
        }
        if (i != 0) {
            m.add(4 * bin * H * W * F);  // u
            conv(m, bin, bin, 2 * H, 2 * W, 3, 1, 0);
            m.sub(bin * H * W * F + 4 * bin * H * W * F);
            H *= 2, W *= 2;
        }
    }
    conv(m, bin, 3, H, W, 3, 1, 0);
    m.sub(bin * H * W * F);
}
}  // namespace

uint64_t sd_vae_activation_peak(const SdVaeArch& v, int h, int w, int threads) {
    Mem m;
    m.add(2.0 * 4 * h * w * F);  // the latent and z = latent / scale
    if (!tiled(h, w)) {
        vae_decode(m, v, h, w, threads);
    } else {
        m.add(4.0 * 64 * h * w * F);  // out [3][H][W] + wsum [H][W]
        const double th = std::min(h, 32), tw = std::min(w, 32);
        m.add(4 * th * tw * F);  // zt
        vae_decode(m, v, th, tw, threads);
    }
    m.add(3.0 * 64 * h * w);  // 8-bit RGB
    return static_cast<uint64_t>(m.peak);
}

uint64_t sd_text_activation_peak(const SdTextArch& t, int chunks) {
    const double T = 77.0 * chunks, D = t.dim;
    // x, the layer norm, q k v (or the fused qkv), the attention output, the MLP's hidden.
    return static_cast<uint64_t>((6 * T * D + T * t.mlp) * F);
}

}  // namespace duan::plan
