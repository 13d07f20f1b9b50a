// Image-to-image with SD 1.x, as the reference (stable-diffusion.cpp, and A1111) does it:
//   1. the init image (8-bit RGB, the requested size) -> [-1, 1] -> VAE encoder -> moments;
//   2. init latent = a posterior sample (mean + std·noise) × 0.18215, the noise drawn from a
//      generator seeded with the seed (the reference seeds, encodes, then seeds again for the
//      initial noise: both draws are the first of the same seed);
//   3. the schedule of `steps` sigmas is sliced (img2img_sigmas): t_enc = int(steps·strength),
//      t_enc = steps-1 if that is all steps, then sigmas[steps-t_enc-1 ..]: t_enc+1 steps run,
//      starting at that sigma;
//   4. x = init_latent + noise·sigma_start, then the sampler and CFG as txt2img, VAE decode.
// strength 1 is txt2img from a noised init (the full schedule); strength 0 runs no step and
// returns the init latent (the reference would still run one step at the smallest sigma).
#pragma once
#include <cstdint>
#include <vector>

#include "diffusion/pipeline.h"

namespace duan::diffusion {

struct Img2ImgParams : Txt2ImgParams {
    std::vector<uint8_t> init_rgb;  // width·height·3 interleaved (width/height of the params)
    float strength = 0.75f;         // in [0, 1]
};

// The schedule img2img runs: `sigmas` (steps+1 values ending in 0) sliced for `strength` as
// above. strength <= 0: {0} (no step); strength >= 1: all of `sigmas`.
std::vector<float> img2img_sigmas(const std::vector<float>& sigmas, float strength);

}  // namespace duan::diffusion
