#include "diffusion/img2img.h"

#include <cmath>

#include "core/error.h"

namespace duan::diffusion {

std::vector<float> img2img_sigmas(const std::vector<float>& sigmas, float strength) {
    if (sigmas.size() < 2) fail("img2img: a schedule needs at least one step");
    if (strength <= 0.0f) return {0.0f};
    if (strength >= 1.0f) return sigmas;
    const int steps = static_cast<int>(sigmas.size()) - 1;
    // The reference: size_t t_enc = sample_steps * strength (a float product, truncated).
    size_t t_enc = static_cast<size_t>(static_cast<float>(steps) * strength);
    if (t_enc == static_cast<size_t>(steps)) t_enc--;
    return std::vector<float>(sigmas.begin() + (steps - static_cast<int>(t_enc) - 1), sigmas.end());
}

std::vector<float> StableDiffusion::encode_image(const std::vector<float>& img, int H, int W) {
    if (!enc_) enc_ = std::make_unique<VaeEncoder>(ck_);
    return enc_->moments(pool_, img, H, W);
}

Txt2ImgResult StableDiffusion::img2img(const Img2ImgParams& p, const Txt2ImgHooks& hooks,
                                       bool decode) {
    if (p.width <= 0 || p.height <= 0 || p.width % 64 != 0 || p.height % 64 != 0)
        fail("img2img: image size ", p.width, "x", p.height, " must be positive multiples of 64");
    if (p.init_rgb.size() != static_cast<size_t>(p.width) * p.height * 3)
        fail("img2img: the init image has ", p.init_rgb.size(), " bytes, expected ", p.width, "x",
             p.height, "x3");
    if (!std::isfinite(p.strength) || p.strength < 0.0f || p.strength > 1.0f)
        fail("img2img: strength must be in [0, 1], got ", p.strength);
    const int h = p.height / 8, w = p.width / 8;
    const std::vector<float> m =
        encode_image(rgb8_to_image(p.init_rgb.data(), p.width, p.height), p.height, p.width);
    auto rng = make_rng(p.rng, p.seed);
    const std::vector<float> init = posterior_sample(m, *rng, latent_scale());
    if (hooks.dump) {
        hooks.dump("vae_moments", {1, 8, h, w}, m);
        hooks.dump("init_latent", {1, 4, h, w}, init);
    }
    return generate(p, hooks, &init, p.strength, decode);
}

}  // namespace duan::diffusion
