// The device side of `duan image --cloud URL`: asks a duan (or OpenAI-compatible) server for an
// image, or, with --split vae, for the final latent only, which the device then decodes with its
// own VAE (serve/latent_wire.h). Measures what crossed the network and how long each side took.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "serve/latent_wire.h"

namespace duan::serve {

struct ImageClientOptions {
    std::string url;      // "http://host:port/v1" (the /v1 prefix is assumed when no path)
    std::string api_key;  // "Authorization: Bearer ..." when set
    double timeout_s = 1800;
};

struct ServerTimings {  // from the Server-Timing header (seconds); all 0 when absent
    double queue_s = 0, text_s = 0, sample_s = 0, decode_s = 0;
};

struct LatentReply {
    std::vector<float> z;  // [4][h][w], the VAE input (final latent / scale)
    float scale = 0;       // the server's latent scale (X-Duan-Latent-Scale); 0: not stated
    std::string variant;   // the server's model variant (sd1, sd2, sdxl); "" if not stated
    int latent_h = 0, latent_w = 0;
    LatentFormat format = LatentFormat::F16;
    uint64_t seed = 0;
    size_t body_bytes = 0;     // the HTTP body received
    size_t request_bytes = 0;  // the HTTP body sent (the JSON request)
    double wall_s = 0;         // request sent -> whole body received
    ServerTimings server;
};

struct PngReply {
    std::vector<uint8_t> png;
    uint64_t seed = 0;
    size_t body_bytes = 0;  // the HTTP body received (JSON with base64)
    size_t request_bytes = 0;
    double wall_s = 0;
    ServerTimings server;
};

// POST {url}/images/latents with Accept: application/octet-stream. `body` is the request JSON
// (prompt, size, seed, steps, ...). Throws duan::Error with the server's message on failure.
LatentReply request_latent(const ImageClientOptions& o, const nlohmann::json& body);
// POST {url}/images/generations (b64_json, n = 1).
PngReply request_png(const ImageClientOptions& o, const nlohmann::json& body);

ServerTimings parse_server_timing(const std::string& header);

// The device's side of the scale check: throws duan::Error, naming both models, when the server's
// latent scale differs from `device_scale` (the device's VAE is of another kind: SD 1.x/2.x vs
// SDXL, and cannot decode that latent). device_scale <= 0 (unknown) or a server that does not
// state its scale (an older duan: SD 1.x's 0.18215 is assumed) pass with a warning on stderr.
void check_latent_scale(const LatentReply& r, float device_scale, const std::string& device_model,
                        const std::string& device_variant);

}  // namespace duan::serve
