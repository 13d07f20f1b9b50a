#include "diffusion/vae_tiled.h"

#include <algorithm>

#include "core/error.h"

namespace duan::diffusion {

namespace {
// Tile starts along one axis of n latent pixels.
std::vector<int> starts(int n, int tile, int overlap) {
    if (n <= tile) return {0};
    std::vector<int> s;
    const int stride = tile - overlap;
    for (int p = 0;; p += stride) {
        if (p + tile >= n) {
            s.push_back(n - tile);
            break;
        }
        s.push_back(p);
    }
    return s;
}
// Blend weight of image pixel x (of a tile L pixels long) with ramps of F pixels on the sides
// that have a neighbour.
float ramp(int x, int L, int F, bool left, bool right) {
    float wgt = 1.0f;
    if (left) wgt = std::min(wgt, (static_cast<float>(x) + 0.5f) / static_cast<float>(F));
    if (right) wgt = std::min(wgt, (static_cast<float>(L - x) - 0.5f) / static_cast<float>(F));
    return wgt;
}
}  // namespace

std::vector<float> vae_decode_tiled(ThreadPool& pool, const VaeDecoder& vae,
                                    const std::vector<float>& z, int h, int w, const VaeTiling& t) {
    if (t.tile < 8 || t.overlap < 0 || t.overlap >= t.tile)
        fail("VAE tiling: tile ", t.tile, " / overlap ", t.overlap, " are not valid");
    if (h <= t.tile && w <= t.tile) return vae.decode(pool, z, h, w);
    const int H = 8 * h, W = 8 * w, F = std::max(1, 8 * t.overlap);
    const std::vector<int> ys = starts(h, t.tile, t.overlap), xs = starts(w, t.tile, t.overlap);
    std::vector<float> out(static_cast<size_t>(3) * H * W, 0.0f), wsum(static_cast<size_t>(H) * W);
    for (size_t a = 0; a < ys.size(); ++a)
        for (size_t b = 0; b < xs.size(); ++b) {
            const int y0 = ys[a], x0 = xs[b];
            const int th = std::min(t.tile, h), tw = std::min(t.tile, w);
            std::vector<float> zt(static_cast<size_t>(4) * th * tw);
            for (int c = 0; c < 4; ++c)
                for (int y = 0; y < th; ++y)
                    std::copy_n(z.data() + (static_cast<int64_t>(c) * h + y0 + y) * w + x0, tw,
                                zt.data() + (static_cast<int64_t>(c) * th + y) * tw);
            const std::vector<float> img = vae.decode(pool, zt, th, tw);  // [3][8th][8tw]
            const int TH = 8 * th, TW = 8 * tw;
            for (int y = 0; y < TH; ++y) {
                const float wy = ramp(y, TH, F, a > 0, a + 1 < ys.size());
                for (int x = 0; x < TW; ++x) {
                    const float wgt = wy * ramp(x, TW, F, b > 0, b + 1 < xs.size());
                    const int64_t o = static_cast<int64_t>(8 * y0 + y) * W + 8 * x0 + x;
                    wsum[o] += wgt;
                    for (int c = 0; c < 3; ++c)
                        out[c * static_cast<int64_t>(H) * W + o] +=
                            wgt * img[(static_cast<int64_t>(c) * TH + y) * TW + x];
                }
            }
        }
    for (int c = 0; c < 3; ++c)
        for (int64_t i = 0; i < static_cast<int64_t>(H) * W; ++i)
            out[c * static_cast<int64_t>(H) * W + i] /= wsum[i];
    return out;
}

}  // namespace duan::diffusion
