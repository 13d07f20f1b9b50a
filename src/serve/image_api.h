// The image endpoints of `duan serve --sd-model CKPT` (docs/SERVING.md, "Images"):
//   POST /v1/images/generations  OpenAI's images API: {"prompt", "n", "size": "512x512",
//                                "response_format": "b64_json"} -> {"created", "data":
//                                [{"b64_json": PNG}]}, plus duan's fields (negative_prompt,
//                                seed, steps, cfg_scale, sampler, scheduler, rng).
//   POST /v1/images/latents      the same request; the answer is the final latent instead of a
//                                PNG (the device/cloud split: the cloud encodes the text and
//                                denoises, the device decodes with its own VAE). JSON with
//                                base64 data, or the raw values with Accept:
//                                application/octet-stream (serve/latent_wire.h).
//   POST /v1/images/edits        OpenAI's image edits (multipart/form-data: the "image" file,
//                                prompt, n, size, ...; no mask): generations with an init image.
// Both take an init image for img2img: "image" (a base64 PNG, or a data: URL of one) and
// "strength" in [0, 1] (0.75); its size is the output size.
// Bad requests (JSON, missing prompt, sizes, steps, a bad image, ...) are 400 with OpenAI's error
// body. A client that hangs up cancels its generation at the next UNet evaluation (499 in the
// metrics, duan_images_cancelled_total); a queued one is dropped before it starts.
#pragma once
#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "diffusion/pipeline.h"
#include "hybrid/metrics.h"
#include "serve/latent_wire.h"

namespace duan::serve {

class HttpServer;

struct ImageLimits {
    int max_side = 1024;               // pixels on a side
    int64_t max_pixels = 1024 * 1024;  // width·height
    int max_steps = 150;
    int max_n = 4;  // images per request
    size_t max_prompt_bytes = 16u << 10;
    float max_cfg = 30.0f;
    int max_queue = 4;  // requests waiting beyond the one running: 429 beyond
};

// img2img's input: the decoded init image (its size is params.width x params.height).
struct InitImage {
    std::vector<uint8_t> rgb;  // width·height·3 interleaved; empty: text to image
    float strength = 0.75f;    // in [0, 1]
};

struct ImageRequest {
    diffusion::Txt2ImgParams params;  // seed: the request's, or drawn at random when absent / < 0
    int n = 1;                        // image b uses seed + b
    std::string model;
    LatentFormat latent_format = LatentFormat::F16;
    InitImage init;  // "image" + "strength"
};

// Parses a body of either endpoint. Throws hybrid::ApiError(400) with "param" naming the field.
ImageRequest parse_image_request(std::string_view body, const ImageLimits& limits);

struct ImageTimings {
    double queue_s = 0;   // waiting for the model
    double text_s = 0;    // text encoding (and the initial noise)
    double sample_s = 0;  // the sampler's steps
    double decode_s = 0;  // VAE decode + PNG (generations only)
    int steps = 0;
    void add(const ImageTimings& o);
};
// "queue;dur=1.2, text;dur=150.3, sample;dur=2310.0, decode;dur=0.0" (milliseconds; the
// Server-Timing header of both endpoints).
std::string server_timing(const ImageTimings& t);

// One Stable Diffusion model, one image at a time: callers wait their turn (at most
// limits.max_queue of them, then ApiError 429).
class ImageService {
  public:
    ImageService(diffusion::StableDiffusion& sd, std::string model_name, ImageLimits limits = {});
    const ImageLimits& limits() const { return limits_; }
    const std::string& model_name() const { return model_name_; }
    // The model's latent scale (0.18215 SD 1.x/2.x, 0.13025 SDXL) and variant ("sd1", "sd2",
    // "sdxl"): what the latents endpoint tells the device, whose VAE must be of the same kind.
    float latent_scale() const { return sd_.latent_scale(); }
    const char* variant() const;

    // `init` (optional): img2img from that image. `client_gone` (optional) is polled while the
    // request waits for its turn and before every UNet evaluation; once it is true the request
    // stops with diffusion::Cancelled.
    // The VAE input z = final_latent / latent_scale(), [4][H/8][W/8].
    std::vector<float> latent(const diffusion::Txt2ImgParams& p, ImageTimings& t,
                              const InitImage* init = nullptr,
                              const std::function<bool()>& client_gone = {});
    // A PNG with the A1111 "parameters" text chunk (with "Denoising strength" for img2img).
    std::vector<uint8_t> png(const diffusion::Txt2ImgParams& p, ImageTimings& t,
                             const InitImage* init = nullptr,
                             const std::function<bool()>& client_gone = {});

    // Sampler steps run since start (all requests; counted as they finish), and whether a
    // request holds the model now (tests).
    int64_t steps_run() const { return steps_run_.load(); }
    bool busy() const { return busy_.load(); }
    int waiting() const { return waiting_.load(); }  // requests holding or waiting for the model

  private:
    class Turn;
    diffusion::Txt2ImgResult run(const diffusion::Txt2ImgParams& p, ImageTimings& t, bool decode,
                                 const InitImage* init, const std::function<bool()>& client_gone);
    diffusion::StableDiffusion& sd_;
    std::string model_name_;
    ImageLimits limits_;
    std::timed_mutex mu_;
    std::atomic<int> waiting_{0};
    std::atomic<int64_t> steps_run_{0};
    std::atomic<bool> busy_{false};
};

// Registers both endpoints on `server` (before server.start()).
void install_image_api(HttpServer& server, ImageService& images, hybrid::Metrics& metrics);

}  // namespace duan::serve
