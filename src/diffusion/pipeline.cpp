#include "diffusion/pipeline.h"

#include <chrono>
#include <cmath>

#include "core/error.h"
#include "diffusion/img2img.h"
#include "diffusion/vae_tiled.h"

namespace duan::diffusion {

StableDiffusion::StableDiffusion(const std::string& checkpoint, const std::string& merges_path,
                                 int n_threads)
    : pool_(n_threads),
      ck_(checkpoint),
      tok_(ClipTokenizer::from_merges_file(merges_path)),
      unet_(ck_),
      vae_(ck_) {
    using L = TextTransformer::Layout;
    switch (unet_.config().version) {
        case SdVersion::SD1:
            vitl_ =
                std::make_unique<TextTransformer>(ck_, TextTransformer::sd1_prefix(ck_), L::HfClip);
            break;
        case SdVersion::SD2:
            big_ = std::make_unique<TextTransformer>(ck_, "cond_stage_model.model.", L::OpenClip);
            break;
        case SdVersion::SDXL:
            vitl_ = std::make_unique<TextTransformer>(
                ck_, "conditioner.embedders.0.transformer.text_model.", L::HfClip);
            big_ = std::make_unique<TextTransformer>(ck_, "conditioner.embedders.1.model.",
                                                     L::OpenClip);
            break;
    }
    const int want = unet_.config().context_dim;
    const int got = (big_ ? big_->dim() : 0) + (vitl_ ? vitl_->dim() : 0);
    if (got != want)
        fail(checkpoint, ": the text encoder width ", got, " does not match the UNet's context ",
             want);
    if (unet_.config().adm_in && (!big_ || big_->proj_dim() + 6 * 256 != unet_.config().adm_in))
        fail(checkpoint, ": label_emb takes ", unet_.config().adm_in,
             " inputs; expected the pooled text width ", big_ ? big_->proj_dim() : 0,
             " + 6·256 time ids");
}

namespace {
// OpenCLIP's tokenizer pads with 0 where CLIP's (SD1, SDXL's ViT-L) pads with EOS: in each
// 77-chunk, everything after the first EOS becomes 0.
std::vector<int32_t> pad_with_zero(std::vector<int32_t> t) {
    for (size_t c = 0; c < t.size(); c += 77) {
        size_t i = c + 1;
        while (i < c + 77 && t[i] != ClipTokenizer::kEos) ++i;
        for (++i; i < c + 77 && i < t.size(); ++i) t[i] = 0;
    }
    return t;
}
}  // namespace

const StableDiffusion::Cond& StableDiffusion::encode_tokens(const std::vector<int32_t>& tokens) {
    for (const auto& [t, e] : te_cache_)
        if (t == tokens) return e;
    if (te_cache_.size() >= 4) te_cache_.erase(te_cache_.begin());
    Cond c;
    if (!big_) {  // SD1: ViT-L last layer, then the final LN
        c.hidden = vitl_->encode(pool_, tokens, true, false, /*clip_skip=*/1).hidden;
    } else if (!vitl_) {  // SD2: ViT-H penultimate layer, then ln_final
        c.hidden = big_->encode(pool_, pad_with_zero(tokens), true, false).hidden;
    } else {  // SDXL: [ViT-L penultimate | bigG penultimate] per token, no final LN; bigG pooled
        const auto a = vitl_->encode(pool_, tokens, false, false);
        auto b = big_->encode(pool_, pad_with_zero(tokens), false, true);
        const size_t T = tokens.size(), da = vitl_->dim(), db = big_->dim();
        c.hidden.resize(T * (da + db));
        for (size_t t = 0; t < T; ++t) {
            std::copy_n(a.hidden.begin() + t * da, da, c.hidden.begin() + t * (da + db));
            std::copy_n(b.hidden.begin() + t * db, db, c.hidden.begin() + t * (da + db) + da);
        }
        c.pooled = std::move(b.pooled);
    }
    te_cache_.emplace_back(tokens, std::move(c));
    return te_cache_.back().second;
}

std::vector<float> StableDiffusion::sdxl_vector(const std::vector<float>& pooled, int width,
                                                int height) {
    std::vector<float> y = pooled;
    const float ids[6] = {static_cast<float>(height), static_cast<float>(width), 0.0f, 0.0f,
                          static_cast<float>(height), static_cast<float>(width)};
    for (float v : ids) {
        const auto e = timestep_embedding(v, 256);
        y.insert(y.end(), e.begin(), e.end());
    }
    return y;
}

namespace {
// The reference's emphasis: per 77-token chunk with any weight != 1, scale each token's hidden
// state by its weight, then rescale the chunk so its mean stays what it was.
void apply_token_weights(float* h, const std::vector<float>& w, size_t tokens, int D) {
    for (size_t c = 0; c * 77 < tokens; ++c) {
        float* hc = h + c * 77 * D;
        const float* wc = w.data() + c * 77;
        bool all_one = true;
        for (int t = 0; t < 77; ++t) all_one = all_one && wc[t] == 1.0f;
        if (all_one) continue;
        double s0 = 0, s1 = 0;
        for (int i = 0; i < 77 * D; ++i) s0 += hc[i];
        for (int t = 0; t < 77; ++t)
            for (int d = 0; d < D; ++d) hc[t * D + d] *= wc[t];
        for (int i = 0; i < 77 * D; ++i) s1 += hc[i];
        const float m0 = static_cast<float>(s0 / (77 * D)), m1 = static_cast<float>(s1 / (77 * D));
        if (std::isfinite(m0) && std::isfinite(m1) && m1 != 0.0f)
            for (int i = 0; i < 77 * D; ++i) hc[i] *= m0 / m1;
    }
}
}  // namespace

std::vector<float> StableDiffusion::encode_prompt(const std::string& text) {
    auto [ids, w] = tok_.encode_weighted(text);
    std::vector<float> h = encode_tokens(ids).hidden;
    apply_token_weights(h.data(), w, ids.size(), unet_.config().context_dim);
    return h;
}

std::vector<float> StableDiffusion::decode_latent(const std::vector<float>& latent, int h, int w) {
    std::vector<float> z = latent;
    for (auto& v : z) v /= latent_scale();
    if (h * w > kVaeTileAboveLatentArea) return vae_decode_tiled(pool_, vae_, z, h, w);
    return vae_.decode(pool_, z, h, w);
}

std::vector<uint8_t> image_to_rgb8(const std::vector<float>& img, int width, int height) {
    const int64_t HW = static_cast<int64_t>(width) * height;
    std::vector<uint8_t> rgb(static_cast<size_t>(HW * 3));
    for (int c = 0; c < 3; ++c)
        for (int64_t i = 0; i < HW; ++i) {
            float v = (img[c * HW + i] + 1.0f) / 2.0f;
            v = std::min(1.0f, std::max(0.0f, v));
            const uint8_t u = v <= 0.0f ? 0
                              : v >= 1.0f
                                  ? 255
                                  : static_cast<uint8_t>(static_cast<int>(v * 255.0f + 0.5f));
            rgb[i * 3 + c] = u;
        }
    return rgb;
}

Txt2ImgResult StableDiffusion::txt2img(const Txt2ImgParams& p, const Txt2ImgHooks& hooks) {
    return generate(p, hooks, nullptr, 1.0f, true);
}

Txt2ImgResult StableDiffusion::txt2latent(const Txt2ImgParams& p, const Txt2ImgHooks& hooks) {
    return generate(p, hooks, nullptr, 1.0f, false);
}

Txt2ImgResult StableDiffusion::generate(const Txt2ImgParams& p, const Txt2ImgHooks& hooks,
                                        const std::vector<float>* init, float strength,
                                        bool decode) {
    if (p.width <= 0 || p.height <= 0 || p.width % 64 != 0 || p.height % 64 != 0)
        fail("image size ", p.width, "x", p.height, " must be positive multiples of 64");
    if (p.steps < 1 || p.steps > 1000) fail("steps must be in 1..1000, got ", p.steps);
    const int h = p.height / 8, w = p.width / 8;
    const int64_t n = 4LL * h * w;
    auto dump = [&](const std::string& name, std::vector<int64_t> shape,
                    const std::vector<float>& d) {
        if (hooks.dump) hooks.dump(name, shape, d);
    };

    // Conditioning: prompt and negative are encoded separately (each may span several 77-chunks).
    const auto [tc, wc] = tok_.encode_weighted(p.prompt);
    const auto [tu, wu] = tok_.encode_weighted(p.negative);
    const bool use_uncond = p.cfg != 1.0f;
    std::vector<int32_t> all = tc;
    if (use_uncond) all.insert(all.end(), tu.begin(), tu.end());
    const Cond emb = encode_tokens(all);  // both in one batch
    ck_.release("cond_stage_model.");     // done with the text encoders' weights
    ck_.release("conditioner.");
    int steps_done = 0;
    auto check_cancel = [&] {
        if (hooks.cancelled && hooks.cancelled()) throw Cancelled(steps_done);
    };
    check_cancel();
    const int D = unet_.config().context_dim;
    const int64_t Lc = static_cast<int64_t>(tc.size()), Lu = static_cast<int64_t>(tu.size());
    std::vector<float> cond(emb.hidden.begin(), emb.hidden.begin() + Lc * D);
    apply_token_weights(cond.data(), wc, tc.size(), D);
    std::vector<float> uncond;
    if (use_uncond) {
        uncond.assign(emb.hidden.begin() + Lc * D, emb.hidden.end());
        apply_token_weights(uncond.data(), wu, tu.size(), D);
    }
    // SDXL: y = pooled (first chunk) + time ids. An empty negative prompt zeroes the uncond hidden
    // states but keeps its pooled vector (the reference's zero_out_masked; sgm would zero both).
    std::vector<float> y_c, y_u;
    if (unet_.config().adm_in) {
        const size_t P = static_cast<size_t>(big_->proj_dim());
        std::vector<float> pc(emb.pooled.begin(), emb.pooled.begin() + P);
        y_c = sdxl_vector(pc, p.width, p.height);
        std::vector<float> pu(P, 0.0f);
        if (use_uncond) {
            const size_t off = static_cast<size_t>(Lc / 77) * P;
            pu.assign(emb.pooled.begin() + off, emb.pooled.begin() + off + P);
            if (p.negative.empty()) std::fill(uncond.begin(), uncond.end(), 0.0f);
        }
        y_u = sdxl_vector(pu, p.width, p.height);
        dump("cond_y", {1, static_cast<int64_t>(y_c.size())}, y_c);
    }
    const std::vector<float>* yc = y_c.empty() ? nullptr : &y_c;
    const std::vector<float>* yu = y_u.empty() ? nullptr : &y_u;
    dump("cond_c_crossattn", {1, Lc, D}, cond);
    if (use_uncond) dump("uncond_c_crossattn", {1, Lu, D}, uncond);

    // Noise: one flat NCHW draw, x_T = noise · sigma0 (img2img: init + noise · sigma0 on the
    // sliced schedule).
    auto rng = make_rng(p.rng, p.seed);
    std::vector<float> sigmas =
        make_sigmas(sched_, p.scheduler.value_or(default_scheduler(p.sampler)), p.steps);
    if (init) sigmas = img2img_sigmas(sigmas, strength);
    const int steps_run = static_cast<int>(sigmas.size()) - 1;
    std::vector<float> x = rng->randn(static_cast<size_t>(n));
    dump("init_noise", {1, 4, h, w}, x);
    if (init) {
        if (init->size() != x.size()) fail("img2img: init latent has the wrong size");
        for (size_t j = 0; j < x.size(); ++j) x[j] = (*init)[j] + x[j] * sigmas[0];
    } else {
        for (auto& v : x) v *= sigmas[0];
    }
    dump("sigmas", {static_cast<int64_t>(sigmas.size())}, sigmas);

    int eval = 0;
    auto t_step = std::chrono::steady_clock::now();
    auto denoise = [&](const std::vector<float>& xi, float sigma, int) {
        char pre[16];
        check_cancel();
        std::snprintf(pre, sizeof pre, "eval%02d_", eval++);
        const std::vector<int64_t> shp = {1, 4, h, w};
        const float c_in = 1.0f / std::sqrt(sigma * sigma + 1.0f);
        const float t = sched_.sigma_to_t(sigma);
        std::vector<float> xin(xi.size());
        for (size_t j = 0; j < xi.size(); ++j) xin[j] = xi[j] * c_in;
        dump(std::string(pre) + "x", shp, xi);
        dump(std::string(pre) + "unet_in", shp, xin);
        std::vector<float> eps = unet_.forward(pool_, xin, h, w, t, cond, Lc, yc);
        dump(std::string(pre) + "eps_cond", shp, eps);
        if (use_uncond) {
            const std::vector<float> eu = unet_.forward(pool_, xin, h, w, t, uncond, Lu, yu);
            dump(std::string(pre) + "eps_uncond", shp, eu);
            for (size_t j = 0; j < eps.size(); ++j) eps[j] = eu[j] + p.cfg * (eps[j] - eu[j]);
            dump(std::string(pre) + "eps_guided", shp, eps);
        }
        std::vector<float> den(xi.size());
        if (p.v_prediction) {  // eps holds v: denoised = c_skip·x + c_out·v
            const float c_skip = 1.0f / (sigma * sigma + 1.0f),
                        c_out = -sigma / std::sqrt(sigma * sigma + 1.0f);
            for (size_t j = 0; j < xi.size(); ++j) den[j] = c_skip * xi[j] + c_out * eps[j];
        } else {
            for (size_t j = 0; j < xi.size(); ++j) den[j] = xi[j] - sigma * eps[j];
        }
        dump(std::string(pre) + "denoised", shp, den);
        return den;
    };
    auto on_step = [&](int i, const std::vector<float>&) {
        const auto now = std::chrono::steady_clock::now();
        const double s = std::chrono::duration<double>(now - t_step).count();
        t_step = now;
        steps_done = i + 1;
        if (hooks.progress) hooks.progress(i + 1, steps_run, s);
    };
    Txt2ImgResult r;
    r.width = p.width;
    r.height = p.height;
    r.latent = sample(p.sampler, denoise, x, sigmas, *rng, on_step);
    dump("final_latent", {1, 4, h, w}, r.latent);
    if (!decode) return r;
    check_cancel();
    ck_.release("model.diffusion_model.");  // the UNet's mapped weights leave before the VAE runs
    r.image = decode_latent(r.latent, h, w);
    dump("vae_decode_raw", {1, 3, p.height, p.width}, r.image);
    r.rgb = image_to_rgb8(r.image, p.width, p.height);
    return r;
}

}  // namespace duan::diffusion
