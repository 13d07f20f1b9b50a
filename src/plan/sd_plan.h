// `duan plan --sd`: will Stable Diffusion run on a device, how fast, and is the device/cloud split
// (the cloud encodes the text and denoises, the device decodes the F16 latent with its VAE)
// faster than running everything locally or fetching the whole PNG?
//
// Memory (what the pipeline holds, pipeline.cpp): the components are built at load (vectors and
// every matrix that is not used in place are copied to the heap then; GGUF F16/quantized matrices
// stay in the file map), then run in turn — text encoder(s), the sampler's UNet evaluations, the
// VAE decoder — and after each the mapped pages of the component that is done are dropped
// (Checkpoint::release). So the peak is the largest stage, not the sum:
//   peak = runtime + tokenizer + heap copies + max over stages (mapped weights touched by then
//          and not yet released + the stage's activations).
// Speed: FLOPs of each stage / effective compute (the device's CPU int8 peak × the calibrated
// prefill efficiency of the weight type × kSdCpuFactor; GPUs: headline TOPS × kSdGpuEff).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "plan/budget.h"
#include "plan/device.h"
#include "plan/memory.h"
#include "plan/sd_arch.h"
#include "plan/speed.h"

namespace duan::plan {

// SD's matmuls are large-M GEMMs (M = latent pixels), timed at the profile's M=512 matmul rate
// of the weight type (attention scores at the measured SD attention rate), but the engine also
// spends time outside them (im2col, GroupNorm, transposes, the f16 rounding of conv inputs):
// kSdCpuFactor = the share of that rate a whole run reaches, measured with the SD 1.5-shape
// checkpoint on the 2-vCPU Zen 4 VM (docs/PLANNING.md, "Stable Diffusion": 0.70 UNet, 0.75 VAE,
// 0.82 text). kSdGpuEff = the share of a GPU's headline dense INT8 TOPS a PyTorch FP16 UNet
// reaches (FP16 tensor peak = 1/2 of INT8 on A10/A100/H100, × ~40% model FLOPs utilisation).
constexpr double kSdCpuFactor = 0.75;
constexpr double kSdGpuEff = 0.2;
// The process and CLIP's BPE tables (49,408 tokens + 48,894 merges), measured like the LLM's.
constexpr uint64_t kSdTokenizerBytes = 12'000'000;
// PNG: stb_image_write's deflate of 8-bit RGB (seconds per megapixel, one thread, measured on
// the Zen 4 VM and used for every device: a phone's big core is within 2× of it) and its size:
// a real picture compresses to ~1.5 bytes/pixel (a random model's noise: 3.0).
constexpr double kPngSecondsPerMpx = 0.10;
constexpr double kPngBytesPerPixel = 1.5;
// What the device sends: the JSON request (prompt, settings) and HTTP headers.
constexpr uint64_t kRequestBytes = 600;
// HTTP response headers around the latent / the PNG.
constexpr uint64_t kResponseHeaderBytes = 300;

struct SdModel {
    SdArch arch;
    std::vector<SdTensor> tensors;
    std::string container = "gguf";  // gguf | safetensors | diffusers
    std::string type;                // "q8_0", or the file's UNet weight type
    std::string name;
};
// A preset at a type as `duan convert --sd --type T` would write it (source F16).
SdModel sd_model_preset(const std::string& preset, const std::string& type);
// A checkpoint file or diffusers folder; type "" = as it is, else as converted to that type.
SdModel sd_model_file(const std::string& path, const std::string& type = "");

struct SdRun {
    int width = 512, height = 512, steps = 20;
    double cfg = 7.0;
    int threads = 0;           // 0: the device's cores (this machine: its hardware threads)
    int prompt_chunks = 1;     // 77-token chunks of the prompt (and of the negative)
    double network_mbps = 20;  // device <-> cloud
    double rtt_ms = 60;
    double png_bytes_per_pixel = kPngBytesPerPixel;
    int evals() const { return steps * (cfg != 1.0 ? 2 : 1); }
    // 77-token sequences the text encoders run: the prompt, and the negative unless cfg is 1.
    int text_chunks() const { return prompt_chunks * (cfg != 1.0 ? 2 : 1); }
    int latent_h() const { return height / 8; }
    int latent_w() const { return width / 8; }
};

struct SdStage {
    std::string name;      // text | unet | vae
    uint64_t weights = 0;  // mapped pages resident during the stage
    uint64_t activations = 0;
};

struct SdMemory {
    std::vector<MemLine> lines;  // for the reader
    uint64_t runtime = 0, tokenizer = 0, heap = 0;
    SdStage text, unet, vae;
    uint64_t peak() const;
    std::string peak_stage() const;
    uint64_t split_device = 0;  // the device in the split: only the VAE decoder is loaded
};
SdMemory sd_plan_memory(const SdModel& m, const SdRun& r, int threads);

struct SdTimes {
    double text = 0, denoise = 0, vae = 0, png = 0;
    double total() const { return text + denoise + vae + png; }
};

struct SdSplit {
    uint64_t request_bytes = 0;  // device -> cloud (both remote modes)
    uint64_t latent_bytes = 0;   // cloud -> device: 4·(H/8)·(W/8)·2 (F16) + headers
    uint64_t png_bytes = 0;      // cloud -> device in the cloud mode (base64 JSON + headers)
    double transfer_s = 0, cloud_s = 0, device_s = 0;  // the split
    double cloud_png_transfer_s = 0, cloud_png_s = 0;  // the whole PNG from the cloud
    double total() const { return cloud_s + transfer_s + device_s; }
    double cloud_total() const { return cloud_png_s + cloud_png_transfer_s; }
    // Below this bandwidth the split beats fetching the PNG (0: it always does): the PNG's extra
    // bytes take longer than the device's decode takes beyond the cloud's.
    double breakeven_mbps = 0;
};

struct SdPlanRow {
    SdModel model;
    SdRun run;
    Device device, cloud;
    Budget budget;
    SdMemory memory;
    bool fits = false, split_fits = false;
    int64_t headroom = 0;
    double flops_text = 0, flops_unet_eval = 0, flops_vae = 0;
    double attn_unet_eval = 0, attn_vae = 0;  // of which attention scores
    double eff_gops = 0, naive_gops = 0;      // compute used for the device (10^9 op/s)
    SdTimes local, naive_local, cloud_times;
    SdSplit split;
    bool calibrated = false;
    std::string faster;  // local | split | cloud
};

SdPlanRow sd_make_row(const SdModel& m, const SdRun& r, const Device& d, const Device& cloud,
                      const Catalog& c, const BudgetOptions& b, const Profile& p);
nlohmann::json sd_row_json(const SdPlanRow& row);

// Effective compute of `d` for SD on weights of type `t` (10^9 op/s), and whether the profile
// was used.
double sd_effective_gops(const Device& d, DType t, const Profile& p);
// The same for the attention scores (the GEMM rate when the profile has no SD attention figure).
double sd_attention_gops(const Device& d, DType t, const Profile& p);

}  // namespace duan::plan

namespace duan::plan {

// A real txt2img here (diffusion::StableDiffusion, prompt "a red ball on the grass", euler, seed
// 42) with the PNG encoded in memory: stage times and the process's peak RSS (VmHWM). Call it
// before anything else allocates much in the process.
struct SdMeasured {
    double load_s = 0, text_s = 0, denoise_s = 0, vae_s = 0, png_s = 0, total_s = 0;
    // CPU seconds (all threads) of the same stages: ÷ threads = the time on an idle machine.
    double text_cpu_s = 0, denoise_cpu_s = 0, vae_cpu_s = 0, png_cpu_s = 0, total_cpu_s = 0;
    uint64_t peak_rss = 0, rss_before = 0;
};
SdMeasured sd_measure_run(const std::string& checkpoint, const std::string& merges, const SdRun& r,
                          int threads);

}  // namespace duan::plan
