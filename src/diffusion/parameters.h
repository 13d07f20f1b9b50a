// The A1111-style "parameters" text that duan writes into its PNGs (the CLI, the server and the
// split client write the same text for the same settings, so their PNG bytes agree):
//   PROMPT\nNegative prompt: NEG\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42,
//   Size: 512x512, Model: NAME[, RNG: CPU][, Denoising strength: 0.75], Version: duan
#pragma once
#include <optional>
#include <string>

#include "diffusion/pipeline.h"

namespace duan::diffusion {

// model_name: the checkpoint's file stem. strength: img2img only.
std::string a1111_parameters(const Txt2ImgParams& p, const std::string& model_name,
                             std::optional<float> strength = std::nullopt);

}  // namespace duan::diffusion
