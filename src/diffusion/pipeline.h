// Text-to-image with a Stable Diffusion 1.x single-file checkpoint, following the reference
// (stable-diffusion.cpp) stage by stage: tokenize -> CLIP text encoder (prompt and negative) ->
// initial noise (seed, --rng cpu|cuda) × sigma0 -> sampler loop with classifier-free guidance ->
// VAE decode -> 8-bit RGB.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "diffusion/clip_tokenizer.h"
#include "diffusion/sampler.h"
#include "diffusion/text_transformer.h"
#include "diffusion/unet.h"
#include "diffusion/vae.h"
#include "diffusion/vae_encoder.h"

namespace duan::diffusion {

struct Txt2ImgParams {
    std::string prompt, negative;
    uint64_t seed = 42;
    int steps = 20;
    float cfg = 7.0f;
    int width = 512, height = 512;
    Sampler sampler = Sampler::EulerA;
    std::optional<Scheduler> scheduler;  // default: default_scheduler(sampler)
    std::string rng = "cuda";            // the reference's default
    // SD 2.x 768-v models predict v, not eps (nothing in the file says so): denoised =
    // c_skip·x + c_out·out with c_skip = 1/(σ²+1), c_out = -σ/sqrt(σ²+1).
    bool v_prediction = false;
};

struct Txt2ImgResult {
    std::vector<float> latent;  // [4][H/8][W/8], the final latent before dividing by 0.18215
    std::vector<float> image;   // [3][H][W], the VAE output (about [-1, 1], unclamped)
    std::vector<uint8_t> rgb;   // H·W·3 interleaved, u8(clamp((x+1)/2)·255 + 0.5)
    int width = 0, height = 0;
};

// Observers: progress after each sampler step (k of n, seconds of that step), and an optional
// dump of named intermediate tensors (names as in testdata/sd/runs: "init_noise", "eval00_x",
// "eval00_eps_cond", "final_latent", …).
// `cancelled` (optional) is asked after the text encoding, before every UNet evaluation and before
// the VAE decode; once it returns true the run stops by throwing Cancelled (a server whose client
// hung up: nothing more is computed, and the unwinding frees the run's buffers).
struct Txt2ImgHooks {
    std::function<void(int step, int steps, double step_seconds)> progress;
    std::function<void(const std::string& name, const std::vector<int64_t>& shape,
                       const std::vector<float>& data)>
        dump;
    std::function<bool()> cancelled;
};

// Thrown when Txt2ImgHooks::cancelled said so; `steps_done` sampler steps had completed.
class Cancelled : public Error {
  public:
    explicit Cancelled(int steps_done)
        : Error("image generation cancelled after " + std::to_string(steps_done) + " steps"),
          steps_done(steps_done) {}
    int steps_done;
};

// The factor between the UNet's latent and the VAE's input (z = latent / scale): 0.18215 for the
// SD 1.x/2.x VAE (kl-f8), 0.13025 for SDXL's. Two checkpoints whose scales differ have different
// VAEs: a latent of one cannot be decoded by the other.
inline float latent_scale_of(SdVersion v) {
    return v == SdVersion::SDXL ? 0.13025f : VaeDecoder::kScale;
}
// "sd1", "sd2", "sdxl": the variant's name on the wire (the latents endpoint).
inline const char* sd_variant_id(SdVersion v) {
    return v == SdVersion::SD1 ? "sd1" : v == SdVersion::SD2 ? "sd2" : "sdxl";
}

struct Img2ImgParams;  // diffusion/img2img.h

class StableDiffusion {
  public:
    // merges_path: CLIP's merges.txt (SD checkpoints do not carry the tokenizer).
    StableDiffusion(const std::string& checkpoint, const std::string& merges_path, int n_threads);

    Txt2ImgResult txt2img(const Txt2ImgParams& p, const Txt2ImgHooks& hooks = {});
    // Text encoding and sampling only (the cloud side of the device/cloud split): the result has
    // the final latent, no image.
    Txt2ImgResult txt2latent(const Txt2ImgParams& p, const Txt2ImgHooks& hooks = {});
    // img2img.cpp: encode the init image, noise it to the strength's sigma, denoise, decode.
    // decode = false stops at the final latent, as txt2latent.
    Txt2ImgResult img2img(const Img2ImgParams& p, const Txt2ImgHooks& hooks = {},
                          bool decode = true);
    // img2img.cpp: VAE encoder moments [8][H/8][W/8] of an image [3][H][W] in [-1, 1] (the
    // encoder is loaded on first use: txt2img never needs it).
    std::vector<float> encode_image(const std::vector<float>& img, int H, int W);
    // Prompt (+ negative) embeddings, [n·77][context_dim] each (768 SD1, 1024 SD2, 2048 SDXL).
    std::vector<float> encode_prompt(const std::string& text);
    // Conditioning of one token sequence: hidden [n·77][context_dim], and for SDXL the bigG
    // pooled vector of each chunk [n][1280].
    struct Cond {
        std::vector<float> hidden, pooled;
    };
    const Cond& encode_tokens(const std::vector<int32_t>& tokens);
    // SDXL's label_emb input y [adm_in = 2816]: pooled (1280) then the 256-wide sinusoidal
    // embeddings of original size (h, w), crop (0, 0) and target size (h, w), in pixels.
    static std::vector<float> sdxl_vector(const std::vector<float>& pooled, int width, int height);
    float latent_scale() const { return latent_scale_of(version()); }
    SdVersion version() const { return unet_.config().version; }
    std::vector<float> decode_latent(const std::vector<float>& latent, int h, int w);

    const Checkpoint& checkpoint() const { return ck_; }
    const UNet& unet() const { return unet_; }
    const ClipTokenizer& tokenizer() const { return tok_; }
    const VaeDecoder& vae() const { return vae_; }
    ThreadPool& pool() { return pool_; }

  private:
    ThreadPool pool_;
    Checkpoint ck_;
    ClipTokenizer tok_;
    // SD1: vitl_ (ViT-L); SD2: big_ (ViT-H); SDXL: vitl_ + big_ (bigG).
    std::unique_ptr<TextTransformer> big_, vitl_;
    UNet unet_;
    VaeDecoder vae_;
    CompVisSchedule sched_;
    // The text encoder's output for the last few token sequences (prompts repeat across images).
    std::vector<std::pair<std::vector<int32_t>, Cond>> te_cache_;
    // txt2img, txt2latent and img2img: init == nullptr starts from noise·σ0 on the full schedule;
    // otherwise from init + noise·σ on the schedule sliced for `strength` (img2img_sigmas).
    Txt2ImgResult generate(const Txt2ImgParams& p, const Txt2ImgHooks& hooks,
                           const std::vector<float>* init, float strength, bool decode);
    std::unique_ptr<VaeEncoder> enc_;  // img2img only, loaded on first use
};

// u8(clamp((x+1)/2, 0, 1)·255 + 0.5) of a [3][H][W] image, interleaved RGB.
std::vector<uint8_t> image_to_rgb8(const std::vector<float>& img, int width, int height);

}  // namespace duan::diffusion
