#include "serve/image_api.h"

#include <chrono>
#include <cmath>
#include <ctime>
#include <random>

#include "core/error.h"
#include "diffusion/parameters.h"
#include "diffusion/png.h"
#include "hybrid/openai.h"
#include "serve/base64.h"
#include "serve/http.h"
#include "serve/http_server.h"

namespace duan::serve {

using hybrid::ApiError;
using hybrid::bad_request;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

const char* kJson = "application/json; charset=utf-8";

double since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// "512x512" -> {512, 512}; strict digits, no signs or spaces.
bool parse_size(const std::string& s, int& w, int& h) {
    const size_t x = s.find('x');
    if (x == std::string::npos || x == 0 || x + 1 >= s.size() || x > 6 || s.size() - x - 1 > 6)
        return false;
    for (size_t i = 0; i < s.size(); ++i)
        if (i != x && (s[i] < '0' || s[i] > '9')) return false;
    w = std::stoi(s.substr(0, x));
    h = std::stoi(s.substr(x + 1));
    return true;
}

const std::string& get_string(const json& j, const char* key, size_t max_bytes) {
    const json& v = j.at(key);
    if (!v.is_string()) throw bad_request(std::string("'") + key + "' must be a string", key);
    const std::string& s = v.get_ref<const std::string&>();
    if (s.size() > max_bytes)
        throw bad_request(
            std::string("'") + key + "' is longer than " + std::to_string(max_bytes) + " bytes",
            key);
    return s;
}

int64_t get_int(const json& j, const char* key, int64_t lo, int64_t hi) {
    const json& v = j.at(key);
    if (!v.is_number_integer())
        throw bad_request(std::string("'") + key + "' must be an integer", key);
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
        throw bad_request(std::string("'") + key + "' is out of range", key);
    const int64_t x = v.get<int64_t>();
    if (x < lo || x > hi)
        throw bad_request(std::string("'") + key + "' must be in " + std::to_string(lo) + ".." +
                              std::to_string(hi) + ", got " + std::to_string(x),
                          key);
    return x;
}

void send_error(httplib::Response& res, const ApiError& e) {
    res.status = e.status;
    if (e.retry_after_s > 0) res.set_header("Retry-After", std::to_string(e.retry_after_s));
    res.set_content(hybrid::error_json(e), kJson);
}

}  // namespace

ImageRequest parse_image_request(std::string_view body, const ImageLimits& lim) {
    const json j = json::parse(body, nullptr, false);
    if (j.is_discarded()) throw bad_request("the request body is not valid JSON");
    if (!j.is_object()) throw bad_request("the request body must be a JSON object");
    ImageRequest r;
    diffusion::Txt2ImgParams& p = r.params;
    if (!j.contains("prompt") || j["prompt"].is_null())
        throw bad_request("'prompt' is required", "prompt", "missing_required_parameter");
    p.prompt = get_string(j, "prompt", lim.max_prompt_bytes);
    if (p.prompt.empty()) throw bad_request("'prompt' must not be empty", "prompt");
    if (j.contains("negative_prompt"))
        p.negative = get_string(j, "negative_prompt", lim.max_prompt_bytes);
    if (j.contains("model")) r.model = get_string(j, "model", 256);
    if (j.contains("n")) r.n = static_cast<int>(get_int(j, "n", 1, lim.max_n));

    p.width = p.height = 512;
    if (j.contains("size")) {
        const std::string& s = get_string(j, "size", 64);
        if (s != "auto" && !parse_size(s, p.width, p.height))
            throw bad_request(
                "'size' must be \"WIDTHxHEIGHT\" (e.g. \"512x512\"), got \"" + s + "\"", "size");
    }
    if (p.width <= 0 || p.height <= 0 || p.width % 64 != 0 || p.height % 64 != 0)
        throw bad_request("size " + std::to_string(p.width) + "x" + std::to_string(p.height) +
                              ": width and height must be positive multiples of 64 (the VAE "
                              "needs multiples of 8 and the UNet latents that are multiples of 8)",
                          "size", "invalid_size");
    if (p.width > lim.max_side || p.height > lim.max_side ||
        static_cast<int64_t>(p.width) * p.height > lim.max_pixels)
        throw bad_request("size " + std::to_string(p.width) + "x" + std::to_string(p.height) +
                              " is too large for this server (at most " +
                              std::to_string(lim.max_side) + " on a side and " +
                              std::to_string(lim.max_pixels) + " pixels)",
                          "size", "size_too_large");

    if (j.contains("response_format")) {
        const std::string& f = get_string(j, "response_format", 64);
        if (f != "b64_json")
            throw bad_request("response_format '" + f +
                                  "' is not supported: duan returns images inline (b64_json)",
                              "response_format");
    }
    if (j.contains("output_format") && get_string(j, "output_format", 64) != "png")
        throw bad_request("only output_format 'png' is supported", "output_format");
    if (j.contains("latent_format")) {
        const std::string& f = get_string(j, "latent_format", 16);
        if (f != "f16" && f != "f32")
            throw bad_request("latent_format must be 'f16' or 'f32'", "latent_format");
        r.latent_format = latent_format_from_name(f);
    }

    p.steps = 20;
    if (j.contains("steps")) p.steps = static_cast<int>(get_int(j, "steps", 1, lim.max_steps));
    if (j.contains("cfg_scale")) {
        const json& v = j["cfg_scale"];
        if (!v.is_number()) throw bad_request("'cfg_scale' must be a number", "cfg_scale");
        const double c = v.get<double>();
        if (!std::isfinite(c) || c < 0 || c > lim.max_cfg)
            throw bad_request("'cfg_scale' must be in 0.." + std::to_string(lim.max_cfg),
                              "cfg_scale");
        p.cfg = static_cast<float>(c);
    }
    int64_t seed = -1;
    if (j.contains("seed") && !j["seed"].is_null()) seed = get_int(j, "seed", INT64_MIN, INT64_MAX);
    if (seed < 0) seed = static_cast<int64_t>(std::random_device{}() & 0x7fffffff);
    p.seed = static_cast<uint64_t>(seed);
    try {
        if (j.contains("sampler"))
            p.sampler = diffusion::sampler_from_name(get_string(j, "sampler", 32));
    } catch (const Error& e) {
        throw bad_request(e.what(), "sampler");
    }
    try {
        if (j.contains("scheduler"))
            p.scheduler = diffusion::scheduler_from_name(get_string(j, "scheduler", 32));
    } catch (const Error& e) {
        throw bad_request(e.what(), "scheduler");
    }
    if (j.contains("rng")) {
        p.rng = get_string(j, "rng", 16);
        if (p.rng != "cpu" && p.rng != "cuda")
            throw bad_request("'rng' must be 'cpu' or 'cuda'", "rng");
    }
    return r;
}

void ImageTimings::add(const ImageTimings& o) {
    queue_s += o.queue_s;
    text_s += o.text_s;
    sample_s += o.sample_s;
    decode_s += o.decode_s;
    steps += o.steps;
}

std::string server_timing(const ImageTimings& t) {
    char b[256];
    std::snprintf(b, sizeof b, "queue;dur=%.1f, text;dur=%.1f, sample;dur=%.1f, decode;dur=%.1f",
                  t.queue_s * 1e3, t.text_s * 1e3, t.sample_s * 1e3, t.decode_s * 1e3);
    return b;
}

// Holds the model for one request; counts it as waiting until then.
class ImageService::Turn {
  public:
    Turn(ImageService& s, double& queue_s) : s_(s) {
        const auto t0 = Clock::now();
        if (s_.waiting_.fetch_add(1) >= s_.limits_.max_queue + 1) {
            s_.waiting_--;
            ApiError e(429, "rate_limit_error", "the image queue is full; retry later",
                       "queue_full");
            e.retry_after_s = 5;
            throw e;
        }
        lk_ = std::unique_lock<std::mutex>(s_.mu_);
        queue_s = since(t0);
    }
    ~Turn() {
        lk_.unlock();
        s_.waiting_--;
    }

  private:
    ImageService& s_;
    std::unique_lock<std::mutex> lk_;
};

ImageService::ImageService(diffusion::StableDiffusion& sd, std::string model_name,
                           ImageLimits limits)
    : sd_(sd), model_name_(std::move(model_name)), limits_(limits) {}

diffusion::Txt2ImgResult ImageService::run(const diffusion::Txt2ImgParams& p, ImageTimings& t,
                                           bool decode) {
    Turn turn(*this, t.queue_s);
    const auto t0 = Clock::now();
    auto t_last = t0;
    double steps_s = 0;
    diffusion::Txt2ImgHooks hooks;
    hooks.progress = [&](int k, int, double s) {
        steps_s += s;
        t.steps = k;
        t_last = Clock::now();
    };
    diffusion::Txt2ImgResult r = decode ? sd_.txt2img(p, hooks) : sd_.txt2latent(p, hooks);
    const double until_last = std::chrono::duration<double>(t_last - t0).count();
    t.sample_s = steps_s;
    t.text_s = std::max(0.0, until_last - steps_s);
    t.decode_s = decode ? since(t_last) : 0.0;
    return r;
}

std::vector<float> ImageService::latent(const diffusion::Txt2ImgParams& p, ImageTimings& t) {
    std::vector<float> z = run(p, t, false).latent;
    for (auto& v : z) v /= diffusion::VaeDecoder::kScale;  // exactly decode_latent's division
    return z;
}

std::vector<uint8_t> ImageService::png(const diffusion::Txt2ImgParams& p, ImageTimings& t) {
    const diffusion::Txt2ImgResult r = run(p, t, true);
    const auto t0 = Clock::now();
    auto png = diffusion::encode_png(r.rgb.data(), r.width, r.height,
                                     {{"parameters", diffusion::a1111_parameters(p, model_name_)}});
    t.decode_s += since(t0);
    return png;
}

void install_image_api(HttpServer& server, ImageService& images, hybrid::Metrics& metrics) {
    metrics.describe("duan_image_response_bytes_total", "counter",
                     "Bytes of image / latent response bodies, by endpoint");
    auto handler = [&server, &images, &metrics](bool latent) {
        return [&server, &images, &metrics, latent](const httplib::Request& req,
                                                    httplib::Response& res) {
            const auto t0 = Clock::now();
            const std::string endpoint = latent ? "image_latents" : "images";
            auto record = [&](int status) {
                metrics.inc("duan_requests_total", {{"endpoint", endpoint},
                                                    {"status", std::to_string(status)},
                                                    {"route", "local"}});
                metrics.observe("duan_request_duration_seconds",
                                {{"endpoint", endpoint}, {"route", "local"}}, since(t0));
            };
            if (!server.authorized(req.get_header_value("Authorization"))) {
                send_error(res, ApiError(401, "invalid_request_error", "invalid API key",
                                         "invalid_api_key"));
                return record(401);
            }
            if (server.draining()) {
                send_error(res, ApiError(503, "server_error", "the server is shutting down",
                                         "shutting_down"));
                return record(503);
            }
            server.enter();
            struct Leave {
                HttpServer& s;
                ~Leave() { s.leave(); }
            } leave{server};
            try {
                const ImageRequest r = parse_image_request(req.body, images.limits());
                const bool octet = latent && req.get_header_value("Accept").find(
                                                 "application/octet-stream") != std::string::npos;
                if (octet && r.n != 1)
                    throw bad_request("application/octet-stream carries one latent: use n=1", "n");
                const int64_t created = static_cast<int64_t>(std::time(nullptr));
                const int h = r.params.height / 8, w = r.params.width / 8;
                ImageTimings total;
                json data = json::array();
                std::vector<uint8_t> raw;
                for (int b = 0; b < r.n; ++b) {
                    diffusion::Txt2ImgParams p = r.params;
                    p.seed = r.params.seed + static_cast<uint64_t>(b);
                    ImageTimings t;
                    if (latent) {
                        raw = pack_latent(images.latent(p, t), r.latent_format);
                        if (!octet)
                            data.push_back({{"object", "image.latent"},
                                            {"index", b},
                                            {"seed", p.seed},
                                            {"latent", base64_encode(raw.data(), raw.size())}});
                    } else {
                        const auto png = images.png(p, t);
                        data.push_back({{"b64_json", base64_encode(png.data(), png.size())},
                                        {"seed", p.seed}});
                    }
                    total.add(t);
                }
                res.set_header("Server-Timing", server_timing(total));
                res.set_header(kSeedHeader, std::to_string(r.params.seed));
                if (octet) {
                    res.set_header(kLatentShapeHeader,
                                   "1,4," + std::to_string(h) + "," + std::to_string(w));
                    res.set_header(kLatentFormatHeader, latent_format_name(r.latent_format));
                    res.set_header(kLatentSpaceHeader, "vae_input");
                    res.set_content(std::string(raw.begin(), raw.end()),
                                    "application/octet-stream");
                } else {
                    json out = {{"created", created}, {"data", std::move(data)}};
                    if (latent) {
                        out["object"] = "list";
                        out["model"] = r.model.empty() ? images.model_name() : r.model;
                        out["latent"] = {{"format", latent_format_name(r.latent_format)},
                                         {"shape", {1, 4, h, w}},
                                         {"layout", "NCHW"},
                                         {"byte_order", "little"},
                                         {"space", "vae_input"},
                                         {"scaling_factor", diffusion::VaeDecoder::kScale}};
                    }
                    out["timings"] = {{"queue_s", total.queue_s},
                                      {"text_s", total.text_s},
                                      {"sample_s", total.sample_s},
                                      {"decode_s", total.decode_s},
                                      {"steps", total.steps}};
                    res.set_content(out.dump(-1, ' ', false, json::error_handler_t::replace),
                                    kJson);
                }
                metrics.inc("duan_image_response_bytes_total", {{"endpoint", endpoint}},
                            static_cast<double>(res.body.size()));
                return record(200);
            } catch (const ApiError& e) {
                send_error(res, e);
                return record(e.status);
            } catch (const Error& e) {
                send_error(res, ApiError(400, "invalid_request_error", e.what()));
                return record(400);
            }
        };
    };
    server.http().Post("/v1/images/generations", handler(false));
    server.http().Post("/v1/images/latents", handler(true));
}

}  // namespace duan::serve
