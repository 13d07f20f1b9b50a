#include "diffusion/vae_blocks.h"

namespace duan::diffusion {

VaeResBlock VaeResBlock::load(const Checkpoint& ck, const std::string& p, int in, int out) {
    VaeResBlock r;
    r.in = in;
    r.out = out;
    r.n1 = ck.norm(p + ".norm1", in);
    r.c1 = ck.conv(p + ".conv1", in, out, 3);
    r.n2 = ck.norm(p + ".norm2", out);
    r.c2 = ck.conv(p + ".conv2", out, out, 3);
    if (in != out) r.skip = ck.conv(p + ".nin_shortcut", in, out, 1);
    return r;
}

void VaeResBlock::forward(ThreadPool& pool, std::vector<float>& x, int H, int W) const {
    const int64_t HW = static_cast<int64_t>(H) * W;
    std::vector<float> h = x;
    group_norm(pool, h.data(), in, HW, 32, kVaeGnEps, n1, true);
    h = conv2d(pool, c1, h.data(), H, W, 1, 1);
    group_norm(pool, h.data(), out, HW, 32, kVaeGnEps, n2, true);
    h = conv2d(pool, c2, h.data(), H, W, 1, 1);
    if (in != out) x = conv2d(pool, skip, x.data(), H, W, 1, 0);
    for (size_t i = 0; i < h.size(); ++i) x[i] += h[i];
}

VaeMidBlock VaeMidBlock::load(const Checkpoint& ck, const std::string& p, int ch) {
    VaeMidBlock m;
    m.ch = ch;
    m.res1 = VaeResBlock::load(ck, p + "mid.block_1", ch, ch);
    m.res2 = VaeResBlock::load(ck, p + "mid.block_2", ch, ch);
    m.attn_norm = ck.norm(p + "mid.attn_1.norm", ch);
    m.q = ck.conv(p + "mid.attn_1.q", ch, ch, 1);
    m.k = ck.conv(p + "mid.attn_1.k", ch, ch, 1);
    m.v = ck.conv(p + "mid.attn_1.v", ch, ch, 1);
    m.proj = ck.conv(p + "mid.attn_1.proj_out", ch, ch, 1);
    return m;
}

void VaeMidBlock::forward(ThreadPool& pool, std::vector<float>& x, int H, int W) const {
    res1.forward(pool, x, H, W);
    {  // single-head self-attention over the H·W positions, d = ch
        const int C = ch;
        const int64_t T = static_cast<int64_t>(H) * W;
        std::vector<float> h = x;
        group_norm(pool, h.data(), C, T, 32, kVaeGnEps, attn_norm, false);
        auto qt = transpose(conv2d(pool, q, h.data(), H, W, 1, 0).data(), C, T);  // [T][C]
        auto kt = transpose(conv2d(pool, k, h.data(), H, W, 1, 0).data(), C, T);
        auto vt = transpose(conv2d(pool, v, h.data(), H, W, 1, 0).data(), C, T);
        std::vector<float> a(static_cast<size_t>(T * C));
        attention(pool, qt.data(), C, kt.data(), C, vt.data(), C, a.data(), T, T, 1, C, false);
        h = transpose(a.data(), T, C);  // [C][T]
        h = conv2d(pool, proj, h.data(), H, W, 1, 0);
        for (size_t i = 0; i < x.size(); ++i) x[i] += h[i];
    }
    res2.forward(pool, x, H, W);
}

}  // namespace duan::diffusion
