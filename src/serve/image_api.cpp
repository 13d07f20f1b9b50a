#include "serve/image_api.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <random>

#include "core/error.h"
#include "diffusion/img2img.h"
#include "diffusion/parameters.h"
#include "diffusion/png.h"
#include "diffusion/png_read.h"
#include "hybrid/openai.h"
#include "serve/base64.h"
#include "serve/connection.h"
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

// img2img: "image" is a base64 PNG (or a "data:image/png;base64," URL of one); its size is the
// output size ("size", when given, must agree: nothing is resized). "strength" in [0, 1].
void parse_init_image(const json& j, const ImageLimits& lim, bool sized, int& width, int& height,
                      InitImage& init) {
    const std::string& s = get_string(j, "image", 64u << 20);
    std::string_view b64 = s;
    if (b64.rfind("data:", 0) == 0) {
        const size_t comma = b64.find(',');
        if (comma == std::string_view::npos ||
            b64.substr(0, comma).find(";base64") == std::string_view::npos)
            throw bad_request("'image': a data URL must be \"data:image/png;base64,...\"", "image");
        b64.remove_prefix(comma + 1);
    }
    const auto bytes = base64_decode(b64);
    if (!bytes)
        throw bad_request("'image' is not valid base64 (a PNG file, base64-encoded)", "image");
    diffusion::Rgb8Image img;
    try {
        img = diffusion::decode_png(bytes->data(), bytes->size(), "'image'", lim.max_side);
    } catch (const Error& e) {
        throw bad_request(e.what(), "image", "invalid_image");
    }
    if (img.width % 64 != 0 || img.height % 64 != 0)
        throw bad_request("'image' is " + std::to_string(img.width) + "x" +
                              std::to_string(img.height) +
                              " pixels; img2img needs width and height that are multiples of 64 "
                              "(duan does not resize: crop or resize it first)",
                          "image", "invalid_image");
    if (static_cast<int64_t>(img.width) * img.height > lim.max_pixels)
        throw bad_request("'image' is " + std::to_string(img.width) + "x" +
                              std::to_string(img.height) + ", more than this server's " +
                              std::to_string(lim.max_pixels) + " pixels",
                          "image", "size_too_large");
    if (sized && (width != img.width || height != img.height))
        throw bad_request("'size' " + std::to_string(width) + "x" + std::to_string(height) +
                              " differs from the init image's " + std::to_string(img.width) + "x" +
                              std::to_string(img.height) + " (the image's size is the output size)",
                          "size");
    width = img.width;
    height = img.height;
    init.rgb = std::move(img.rgb);
    init.strength = 0.75f;
    if (j.contains("strength") && !j["strength"].is_null()) {
        const json& v = j["strength"];
        if (!v.is_number()) throw bad_request("'strength' must be a number", "strength");
        const double x = v.get<double>();
        if (!std::isfinite(x) || x < 0 || x > 1)
            throw bad_request("'strength' must be in [0, 1]", "strength");
        init.strength = static_cast<float>(x);
    }
}

// OpenAI's POST /v1/images/edits (multipart/form-data) as the JSON body of
// /v1/images/generations: the "image" file (or "image[]", one) becomes the base64 "image",
// numeric fields (sent as text in a form) become numbers, the others strings. A "mask" is refused:
// duan's img2img changes the whole image.
std::string edit_form_to_json(const httplib::Request& req) {
    if (!req.is_multipart_form_data())
        throw bad_request("/v1/images/edits takes multipart/form-data (OpenAI's image edits)");
    json j = json::object();
    for (const auto& [name, f] : req.files) {
        if (name == "mask")
            throw bad_request("'mask' is not supported: duan's img2img changes the whole image",
                              "mask");
        if (name == "image" || name == "image[]") {
            if (j.contains("image"))
                throw bad_request("one 'image' is supported, got several", "image");
            j["image"] =
                base64_encode(reinterpret_cast<const uint8_t*>(f.content.data()), f.content.size());
            continue;
        }
        if (j.contains(name)) throw bad_request("'" + name + "' is given twice", name);
        static const char* kNumeric[] = {"n", "steps", "seed", "cfg_scale", "strength"};
        bool numeric = false;
        for (const char* k : kNumeric) numeric = numeric || name == k;
        const json v = numeric ? json::parse(f.content, nullptr, false) : json();
        j[name] = numeric && v.is_number() ? v : json(f.content);
    }
    if (!j.contains("image")) throw bad_request("'image' is required", "image");
    return j.dump();
}

// "0.18215", "0.13025": the shortest text that reads back as the same float.
std::string scale_text(float v) {
    char b[32];
    for (int prec = 5; prec <= 9; ++prec) {
        std::snprintf(b, sizeof b, "%.*g", prec, static_cast<double>(v));
        if (std::strtof(b, nullptr) == v) break;
    }
    return b;
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
    bool sized = false;
    if (j.contains("size")) {
        const std::string& s = get_string(j, "size", 64);
        if (s != "auto" && !parse_size(s, p.width, p.height))
            throw bad_request(
                "'size' must be \"WIDTHxHEIGHT\" (e.g. \"512x512\"), got \"" + s + "\"", "size");
        sized = s != "auto";
    }
    if (j.contains("image") && !j["image"].is_null())
        parse_init_image(j, lim, sized, p.width, p.height, r.init);
    else if (j.contains("strength") && !j["strength"].is_null())
        throw bad_request("'strength' needs an init 'image' (img2img)", "strength");
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
    // A client that leaves while waiting (client_gone polled every 100 ms) is dropped before
    // it costs anything: diffusion::Cancelled(0).
    Turn(ImageService& s, double& queue_s, const std::function<bool()>& client_gone) : s_(s) {
        const auto t0 = Clock::now();
        if (s_.waiting_.fetch_add(1) >= s_.limits_.max_queue + 1) {
            s_.waiting_--;
            ApiError e(429, "rate_limit_error", "the image queue is full; retry later",
                       "queue_full");
            e.retry_after_s = 5;
            throw e;
        }
        lk_ = std::unique_lock<std::timed_mutex>(s_.mu_, std::defer_lock);
        while (!lk_.try_lock_for(std::chrono::milliseconds(100)))
            if (client_gone && client_gone()) {
                s_.waiting_--;
                throw diffusion::Cancelled(0);
            }
        s_.busy_ = true;
        queue_s = since(t0);
    }
    ~Turn() {
        s_.busy_ = false;
        lk_.unlock();
        s_.waiting_--;
    }

  private:
    ImageService& s_;
    std::unique_lock<std::timed_mutex> lk_;
};

ImageService::ImageService(diffusion::StableDiffusion& sd, std::string model_name,
                           ImageLimits limits)
    : sd_(sd), model_name_(std::move(model_name)), limits_(limits) {}

const char* ImageService::variant() const {
    return diffusion::sd_variant_id(sd_.version());
}

diffusion::Txt2ImgResult ImageService::run(const diffusion::Txt2ImgParams& p, ImageTimings& t,
                                           bool decode, const InitImage* init,
                                           const std::function<bool()>& client_gone) {
    Turn turn(*this, t.queue_s, client_gone);
    const auto t0 = Clock::now();
    auto t_last = t0;
    double steps_s = 0;
    diffusion::Txt2ImgHooks hooks;
    hooks.progress = [&](int k, int, double s) {
        steps_s += s;
        t.steps = k;
        t_last = Clock::now();
        steps_run_++;
    };
    hooks.cancelled = client_gone;
    diffusion::Txt2ImgResult r;
    if (init && !init->rgb.empty()) {
        diffusion::Img2ImgParams ip;
        static_cast<diffusion::Txt2ImgParams&>(ip) = p;
        ip.init_rgb = init->rgb;
        ip.strength = init->strength;
        r = sd_.img2img(ip, hooks, decode);
    } else {
        r = decode ? sd_.txt2img(p, hooks) : sd_.txt2latent(p, hooks);
    }
    const double until_last = std::chrono::duration<double>(t_last - t0).count();
    t.sample_s = steps_s;
    t.text_s = std::max(0.0, until_last - steps_s);
    t.decode_s = decode ? since(t_last) : 0.0;
    return r;
}

std::vector<float> ImageService::latent(const diffusion::Txt2ImgParams& p, ImageTimings& t,
                                        const InitImage* init,
                                        const std::function<bool()>& client_gone) {
    std::vector<float> z = run(p, t, false, init, client_gone).latent;
    const float scale = sd_.latent_scale();
    for (auto& v : z) v /= scale;  // exactly decode_latent's division
    return z;
}

std::vector<uint8_t> ImageService::png(const diffusion::Txt2ImgParams& p, ImageTimings& t,
                                       const InitImage* init,
                                       const std::function<bool()>& client_gone) {
    const diffusion::Txt2ImgResult r = run(p, t, true, init, client_gone);
    const auto t0 = Clock::now();
    std::optional<float> denoise;
    if (init && !init->rgb.empty()) denoise = init->strength;
    auto png = diffusion::encode_png(
        r.rgb.data(), r.width, r.height,
        {{"parameters", diffusion::a1111_parameters(p, model_name_, denoise)}});
    t.decode_s += since(t0);
    return png;
}

void install_image_api(HttpServer& server, ImageService& images, hybrid::Metrics& metrics) {
    metrics.describe("duan_image_response_bytes_total", "counter",
                     "Bytes of image / latent response bodies, by endpoint");
    metrics.describe("duan_image_steps_total", "counter",
                     "Sampler steps run for image requests (cancelled ones included), by endpoint");
    metrics.describe("duan_images_cancelled_total", "counter",
                     "Image requests stopped because their client hung up, by endpoint");
    auto handler = [&server, &images, &metrics](bool latent, bool edits) {
        return [&server, &images, &metrics, latent, edits](const httplib::Request& req,
                                                           httplib::Response& res) {
            const auto t0 = Clock::now();
            const std::string endpoint = latent  ? "image_latents"
                                         : edits ? "image_edits"
                                                 : "images";
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
            int steps_done = 0;  // of this request's earlier images (n > 1)
            try {
                const std::string form = edits ? edit_form_to_json(req) : std::string();
                const ImageRequest r =
                    parse_image_request(edits ? form : req.body, images.limits());
                // A client that hangs up cancels its generation (httplib 0.11 does not hand the
                // handler its socket: it is found by its addresses, serve/connection.h).
                const int fd = find_connection_socket(req.local_addr, req.local_port,
                                                      req.remote_addr, req.remote_port);
                const std::function<bool()> gone = [fd] { return fd >= 0 && peer_closed(fd); };
                const InitImage* init = r.init.rgb.empty() ? nullptr : &r.init;
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
                        raw = pack_latent(images.latent(p, t, init, gone), r.latent_format);
                        if (!octet)
                            data.push_back({{"object", "image.latent"},
                                            {"index", b},
                                            {"seed", p.seed},
                                            {"latent", base64_encode(raw.data(), raw.size())}});
                    } else {
                        const auto png = images.png(p, t, init, gone);
                        data.push_back({{"b64_json", base64_encode(png.data(), png.size())},
                                        {"seed", p.seed}});
                    }
                    total.add(t);
                    steps_done = total.steps;
                }
                metrics.inc("duan_image_steps_total", {{"endpoint", endpoint}}, total.steps);
                res.set_header("Server-Timing", server_timing(total));
                res.set_header(kSeedHeader, std::to_string(r.params.seed));
                if (octet) {
                    res.set_header(kLatentShapeHeader,
                                   "1,4," + std::to_string(h) + "," + std::to_string(w));
                    res.set_header(kLatentFormatHeader, latent_format_name(r.latent_format));
                    res.set_header(kLatentSpaceHeader, "vae_input");
                    res.set_header(kLatentScaleHeader, scale_text(images.latent_scale()));
                    res.set_header(kModelVariantHeader, images.variant());
                    res.set_content(std::string(raw.begin(), raw.end()),
                                    "application/octet-stream");
                } else {
                    json out = {{"created", created}, {"data", std::move(data)}};
                    if (latent) {
                        out["object"] = "list";
                        out["model"] = r.model.empty() ? images.model_name() : r.model;
                        out["latent"] = {
                            {"format", latent_format_name(r.latent_format)},
                            {"shape", {1, 4, h, w}},
                            {"layout", "NCHW"},
                            {"byte_order", "little"},
                            {"space", "vae_input"},
                            {"scaling_factor", std::stod(scale_text(images.latent_scale()))},
                            {"model_variant", images.variant()}};
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
            } catch (const diffusion::Cancelled& e) {
                // Nobody reads this answer; the status is for the logs and metrics.
                metrics.inc("duan_images_cancelled_total", {{"endpoint", endpoint}});
                metrics.inc("duan_image_steps_total", {{"endpoint", endpoint}},
                            steps_done + e.steps_done);
                send_error(res, ApiError(499, "cancelled", "the client closed the connection",
                                         "cancelled"));
                return record(499);
            } catch (const ApiError& e) {
                send_error(res, e);
                return record(e.status);
            } catch (const Error& e) {
                send_error(res, ApiError(400, "invalid_request_error", e.what()));
                return record(400);
            }
        };
    };
    server.http().Post("/v1/images/generations", handler(false, false));
    server.http().Post("/v1/images/edits", handler(false, true));
    server.http().Post("/v1/images/latents", handler(true, false));
}

}  // namespace duan::serve
