// `duan image --cloud URL [--split vae]` (cmd_image_cloud.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "diffusion/pipeline.h"

namespace duan::cli {

struct CloudImageJob {
    std::string url, api_key;
    bool split_vae = false;  // true: receive the latent, decode here with the VAE of `model`
    std::string model, out, save_latent;
    diffusion::Txt2ImgParams params;  // seed already chosen
    // img2img (--init): the init PNG file's bytes, sent base64 as "image", and --strength.
    std::vector<uint8_t> init_png;
    float strength = 0.75f;
    int n_threads = 1;
};

// Returns the exit code; throws duan::Error.
int run_cloud_image(const CloudImageJob& job);

double peak_rss_mib();  // cmd_image.cpp

}  // namespace duan::cli
