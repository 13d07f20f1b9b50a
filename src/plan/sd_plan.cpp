#include "plan/sd_plan.h"

#include <algorithm>
#include <map>

#include "core/error.h"
#include "diffusion/weights.h"

namespace duan::plan {

// ------------------------------------- models -------------------------------------
SdModel sd_model_preset(const std::string& preset, const std::string& type) {
    auto t = dtype_from_name(type);
    if (!t) fail("--type: unknown type '", type, "' (f32, f16, q8_0, q4_0, q4_k)");
    SdModel m;
    m.arch = sd_preset(preset);
    m.tensors = sd_convert(sd_tensors(m.arch, DType::F16), *t);
    m.container = "gguf";
    m.type = dtype_name(*t);
    m.name = m.arch.name;
    return m;
}

namespace {
// The type of the UNet's biggest matrices (what its time is spent on).
std::string dominant_type(const std::vector<SdTensor>& ts, SdPart part) {
    std::map<std::string, uint64_t> by;
    for (const auto& t : ts)  // embeddings are looked up, not multiplied
        if (t.part == part && t.shape.size() >= 2 && t.name.find("embedding") == std::string::npos)
            by[dtype_name(t.type)] += t.bytes();
    std::string best = "f16";
    uint64_t most = 0;
    for (const auto& [k, v] : by)
        if (v > most) most = v, best = k;
    return best;
}
}  // namespace

SdModel sd_model_file(const std::string& path, const std::string& type) {
    diffusion::Checkpoint ck(path);
    SdModel m;
    m.arch = sd_arch_from(ck);
    m.tensors = sd_tensors_of(ck);
    m.container = ck.container();
    m.name = path;
    if (!type.empty()) {
        auto t = dtype_from_name(type);
        if (!t) fail("--type: unknown type '", type, "' (f32, f16, q8_0, q4_0, q4_k)");
        m.tensors = sd_convert(m.tensors, *t);
        m.container = "gguf";
    }
    m.type = dominant_type(m.tensors, SdPart::UNet);
    return m;
}

// ------------------------------------- memory -------------------------------------
namespace {
bool constructed(SdPart p) {
    return p == SdPart::Text || p == SdPart::UNet || p == SdPart::VaeDecoder;
}
bool has(const std::string& s, const char* sub) {
    return s.find(sub) != std::string::npos;
}

// Where one tensor lives once the pipeline is built (weights.cpp): `heap` bytes copied at load,
// `mapped` file bytes used in place (touched when its component runs), `loaded` file bytes read
// at load to make the heap copy (resident until the component is released).
struct Placement {
    uint64_t heap = 0, mapped = 0, loaded = 0;
};
Placement place(const SdTensor& t, bool gguf) {
    Placement p;
    const bool is_float32 = t.type == DType::F32 || t.type == DType::BF16;
    if (has(t.name, "embedding")) {  // Checkpoint::matrix: F32 in place (only rows read)
        if (!(t.type == DType::F32)) p.heap = t.numel() * 4, p.loaded = t.bytes();
        return p;
    }
    if (t.shape.size() <= 1 || has(t.name, ".bias") || has(t.name, "text_projection")) {
        p.heap = t.numel() * 4;  // vec(), to_f32()
        p.loaded = t.bytes();
        return p;
    }
    if (gguf && !is_float32) {  // kernels::matmul on the map
        p.mapped = t.bytes();
        return p;
    }
    // pack_weights: rows padded to panels of 16, f32.
    const int64_t n = t.shape[0], k = t.numel() / std::max<int64_t>(1, n);
    p.heap = static_cast<uint64_t>((n + 15) / 16 * 16 * k * 4);
    p.loaded = t.bytes();
    return p;
}

double act_bytes(const SdModel& m) {
    if (m.container != "gguf") return 4;  // Linear's f16-rounded input copy (packed F16 weights)
    if (m.type == "f16") return 2;
    if (m.type == "f32") return 0;
    return 1.0625;  // Q8_0 / Q8_K activation blocks
}

int device_threads(const Device& d, const SdRun& r) {
    if (r.threads > 0) return r.threads;
    return std::max(1, d.cpu_big + d.cpu_little);
}
}  // namespace

uint64_t SdMemory::peak() const {
    const uint64_t s = std::max({text.weights + text.activations, unet.weights + unet.activations,
                                 vae.weights + vae.activations});
    return runtime + tokenizer + heap + s;
}

std::string SdMemory::peak_stage() const {
    const uint64_t a = text.weights + text.activations, b = unet.weights + unet.activations,
                   c = vae.weights + vae.activations;
    return a >= b && a >= c ? "text" : b >= c ? "unet" : "vae";
}

SdMemory sd_plan_memory(const SdModel& m, const SdRun& r, int threads) {
    SdMemory mem;
    const bool gguf = m.container == "gguf";
    std::map<SdPart, Placement> by;
    for (const auto& t : m.tensors) {
        if (!constructed(t.part)) continue;
        const Placement p = place(t, gguf);
        auto& s = by[t.part];
        s.heap += p.heap, s.mapped += p.mapped, s.loaded += p.loaded;
    }
    const Placement te = by[SdPart::Text], un = by[SdPart::UNet], va = by[SdPart::VaeDecoder];
    mem.runtime = kRuntimeBytes + static_cast<uint64_t>(threads) * kThreadBytes;
    mem.tokenizer = kSdTokenizerBytes;
    mem.heap = te.heap + un.heap + va.heap;
    const int h = r.latent_h(), w = r.latent_w();
    const int chunks = r.text_chunks();
    mem.text = {"text", te.mapped + te.loaded + un.loaded + va.loaded, 0};
    for (const auto& t : m.arch.text)
        mem.text.activations = std::max(mem.text.activations, sd_text_activation_peak(t, chunks));
    mem.unet = {
        "unet", un.mapped + un.loaded + va.loaded,
        sd_unet_activation_peak(m.arch.unet, h, w, 77 * r.prompt_chunks, threads, act_bytes(m))};
    mem.vae = {"vae", va.mapped + va.loaded, sd_vae_activation_peak(m.arch.vae, h, w, threads)};
    mem.split_device = mem.runtime + va.heap + mem.vae.weights + mem.vae.activations;

    auto line = [&](const std::string& name, uint64_t bytes, const std::string& detail) {
        mem.lines.push_back({name, bytes, detail});
    };
    auto params = [&](SdPart p) {
        char s[64];
        std::snprintf(s, sizeof s, "%.0f M params", sd_sum(m.tensors, p).params / 1e6);
        return std::string(s);
    };
    const std::string how = gguf ? "mapped, used in place" : "packed to f32 at load";
    line("text_encoder", te.heap + te.mapped + te.loaded,
         params(SdPart::Text) + ", " + how + "; released after encoding");
    line("unet", un.heap + un.mapped + un.loaded,
         params(SdPart::UNet) + ", " + how + "; released before the VAE");
    line("vae_decoder", va.heap + va.mapped + va.loaded,
         params(SdPart::VaeDecoder) + ", " + how + "; the split device loads only this");
    line("heap_copies", mem.heap, "norms, biases, f32 matrices (held for the whole run)");
    line("act_text", mem.text.activations, "text encoder activations");
    line("act_unet", mem.unet.activations,
         "UNet activations at " + std::to_string(w) + "x" + std::to_string(h) +
             " latent (skips, conv im2col, GEGLU, attention tiles)");
    line("act_vae", mem.vae.activations,
         std::string("VAE decode activations") +
             (h * w > 64 * 64 ? " (tiled: 32x32-latent tiles)" : ""));
    line("runtime", mem.runtime + mem.tokenizer, "process + CLIP tokenizer");
    return mem;
}

// ------------------------------------- speed -------------------------------------
double sd_effective_gops(const Device& d, DType t, const Profile& p) {
    if (d.cpu_int8_gops > 0) return d.cpu_int8_gops * p.sd_eff(t) * kSdCpuFactor;
    return d.int8_tops * 1e3 * kSdGpuEff;
}

double sd_attention_gops(const Device& d, DType t, const Profile& p) {
    if (d.cpu_int8_gops > 0 && p.sd_attn_eff() > 0)
        return d.cpu_int8_gops * p.sd_attn_eff() * kSdCpuFactor;
    return sd_effective_gops(d, t, p);
}

namespace {
SdTimes times_on(const SdPlanRow& row, const Device& d, const Profile& p, bool naive) {
    SdTimes s;
    // Seconds for `flops` of which `attn` are attention scores, on the part's weight type.
    auto secs = [&](SdPart part, double flops, double attn) {
        if (naive) return flops / (d.int8_tops * 1e12);
        const auto t = dtype_from_name(dominant_type(row.model.tensors, part));
        const DType ty = t ? *t : DType::F16;
        return (flops - attn) / (sd_effective_gops(d, ty, p) * 1e9) +
               attn / (sd_attention_gops(d, ty, p) * 1e9);
    };
    s.text = secs(SdPart::Text, row.flops_text, 0);
    s.denoise = row.run.evals() * secs(SdPart::UNet, row.flops_unet_eval, row.attn_unet_eval);
    s.vae = secs(SdPart::VaeDecoder, row.flops_vae, row.attn_vae);
    s.png = naive ? 0 : kPngSecondsPerMpx * row.run.width * row.run.height / 1e6;
    return s;
}
double transfer_s(uint64_t bytes, const SdRun& r) {
    return bytes * 8.0 / (r.network_mbps * 1e6) + r.rtt_ms / 1e3;
}
}  // namespace

SdPlanRow sd_make_row(const SdModel& m, const SdRun& r, const Device& d, const Device& cloud,
                      const Catalog& c, const BudgetOptions& b, const Profile& p) {
    if (r.width <= 0 || r.height <= 0 || r.width % 64 || r.height % 64)
        fail("image size ", r.width, "x", r.height, " must be positive multiples of 64");
    if (r.steps < 1) fail("--steps must be >= 1");
    if (r.network_mbps <= 0) fail("--network-mbps must be > 0");
    SdPlanRow row;
    row.model = m;
    row.run = r;
    row.device = d;
    row.cloud = cloud;
    row.calibrated = !p.empty();
    row.budget = app_budget(d, c, b);
    row.memory = sd_plan_memory(m, r, device_threads(d, r));
    row.fits = row.memory.peak() <= row.budget.bytes;
    row.split_fits = row.memory.split_device <= row.budget.bytes;
    row.headroom = static_cast<int64_t>(row.budget.bytes) - static_cast<int64_t>(row.memory.peak());
    const int h = r.latent_h(), w = r.latent_w();
    for (const auto& t : m.arch.text) row.flops_text += sd_text_flops(t, r.text_chunks());
    row.flops_unet_eval =
        sd_unet_flops(m.arch.unet, h, w, 77 * r.prompt_chunks, &row.attn_unet_eval);
    row.flops_vae = sd_vae_decode_flops(m.arch.vae, h, w, &row.attn_vae);
    const auto ut = dtype_from_name(m.type);
    row.eff_gops = sd_effective_gops(d, ut ? *ut : DType::F16, p);
    row.naive_gops = d.int8_tops * 1e3;
    row.local = times_on(row, d, p, false);
    row.naive_local = times_on(row, d, p, true);
    row.cloud_times = times_on(row, cloud, p, false);

    SdSplit& s = row.split;
    s.request_bytes = kRequestBytes;
    s.latent_bytes = 4ull * h * w * 2 + kResponseHeaderBytes;
    const double png = r.png_bytes_per_pixel * r.width * r.height;
    s.png_bytes = static_cast<uint64_t>(png * 4 / 3) + kResponseHeaderBytes;  // base64 in JSON
    s.cloud_s = row.cloud_times.text + row.cloud_times.denoise;
    s.device_s = row.local.vae + row.local.png;
    s.transfer_s = transfer_s(s.request_bytes + s.latent_bytes, r);
    s.cloud_png_s = row.cloud_times.total();
    s.cloud_png_transfer_s = transfer_s(s.request_bytes + s.png_bytes, r);

    const double extra_s = s.device_s - (s.cloud_png_s - s.cloud_s);
    s.breakeven_mbps =
        extra_s > 1e-6 ? (static_cast<double>(s.png_bytes) - s.latent_bytes) * 8 / extra_s / 1e6 : 0;
    double best = s.total();
    row.faster = "split";
    if (s.cloud_total() < best) best = s.cloud_total(), row.faster = "cloud";
    if (row.fits && row.local.total() < best) row.faster = "local";
    return row;
}

nlohmann::json sd_row_json(const SdPlanRow& row) {
    nlohmann::json j;
    const auto& m = row.model;
    j["mode"] = "sd";
    j["model"] = m.name;
    j["variant"] = diffusion::sd_version_name(m.arch.unet.version);
    j["type"] = m.type;
    j["container"] = m.container;
    j["device"] = row.device.id;
    j["cloud_device"] = row.cloud.id;
    j["width"] = row.run.width;
    j["height"] = row.run.height;
    j["steps"] = row.run.steps;
    j["cfg"] = row.run.cfg;
    j["unet_evals"] = row.run.evals();
    for (SdPart p : {SdPart::Text, SdPart::UNet, SdPart::VaeDecoder}) {
        const auto s = sd_sum(m.tensors, p);
        j[std::string(sd_part_name(p)) + "_params"] = s.params;
        j[std::string(sd_part_name(p)) + "_bytes"] = s.bytes;
    }
    const auto& mem = row.memory;
    j["heap_bytes"] = mem.heap;
    j["runtime_bytes"] = mem.runtime + mem.tokenizer;
    j["stages"] = {
        {"text", {{"weights_bytes", mem.text.weights}, {"activation_bytes", mem.text.activations}}},
        {"unet", {{"weights_bytes", mem.unet.weights}, {"activation_bytes", mem.unet.activations}}},
        {"vae", {{"weights_bytes", mem.vae.weights}, {"activation_bytes", mem.vae.activations}}}};
    j["peak_bytes"] = mem.peak();
    j["peak_stage"] = mem.peak_stage();
    j["budget_bytes"] = row.budget.bytes;
    j["budget_rule"] = row.budget.rule;
    j["fits"] = row.fits;
    j["headroom_bytes"] = row.headroom;
    j["split_device_peak_bytes"] = mem.split_device;
    j["split_fits"] = row.split_fits;
    j["flops_text"] = row.flops_text;
    j["flops_unet_eval"] = row.flops_unet_eval;
    j["flops_vae_decode"] = row.flops_vae;
    j["attention_flops_unet_eval"] = row.attn_unet_eval;
    j["attention_flops_vae_decode"] = row.attn_vae;
    j["effective_gops"] = row.eff_gops;
    j["naive_gops"] = row.naive_gops;
    j["calibrated"] = row.calibrated;
    j["local_text_s"] = row.local.text;
    j["local_denoise_s"] = row.local.denoise;
    j["local_vae_s"] = row.local.vae;
    j["local_png_s"] = row.local.png;
    j["local_s"] = row.local.total();
    j["naive_local_s"] = row.naive_local.total();
    const auto& s = row.split;
    j["network_mbps"] = row.run.network_mbps;
    j["rtt_ms"] = row.run.rtt_ms;
    j["request_bytes"] = s.request_bytes;
    j["transfer_bytes"] = s.latent_bytes;
    j["split_cloud_s"] = s.cloud_s;
    j["split_transfer_s"] = s.transfer_s;
    j["split_device_s"] = s.device_s;
    j["split_s"] = s.total();
    j["cloud_png_bytes"] = s.png_bytes;
    j["cloud_s"] = s.cloud_png_s;
    j["cloud_transfer_s"] = s.cloud_png_transfer_s;
    j["cloud_total_s"] = s.cloud_total();
    j["split_breakeven_mbps"] = s.breakeven_mbps;
    j["faster"] = row.faster;
    nlohmann::json lines = nlohmann::json::array();
    for (const auto& l : mem.lines)
        lines.push_back({{"name", l.name}, {"bytes", l.bytes}, {"detail", l.detail}});
    j["memory"] = lines;
    return j;
}

}  // namespace duan::plan
