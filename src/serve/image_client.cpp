#include "serve/image_client.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"
#include "serve/base64.h"
#include "serve/http.h"

namespace duan::serve {

using nlohmann::json;

namespace {

struct Target {
    std::string origin, base;
};

Target split_url(const std::string& u) {
    const size_t scheme_end = u.find("://");
    if (scheme_end == std::string::npos ||
        (u.compare(0, scheme_end, "http") != 0 && u.compare(0, scheme_end, "https") != 0))
        fail("--cloud ", u, ": expected http://host[:port][/path] or https://...");
    const size_t path_start = u.find('/', scheme_end + 3);
    Target t;
    t.origin = u.substr(0, path_start);
    t.base = path_start == std::string::npos ? "/v1" : u.substr(path_start);
    while (!t.base.empty() && t.base.back() == '/') t.base.pop_back();
    if (t.origin.size() <= scheme_end + 3) fail("--cloud ", u, ": no host");
    return t;
}

httplib::Result post(const ImageClientOptions& o, const std::string& endpoint, const json& body,
                     const char* accept, double& wall_s, size_t& sent) {
    const Target t = split_url(o.url);
    httplib::Client cli(t.origin);
    cli.set_connection_timeout(5, 0);
    const auto to = static_cast<time_t>(o.timeout_s);
    cli.set_read_timeout(to, 0);
    cli.set_write_timeout(30, 0);
    httplib::Headers h = {{"Accept", accept}};
    if (!o.api_key.empty()) h.emplace("Authorization", "Bearer " + o.api_key);
    const auto t0 = std::chrono::steady_clock::now();
    const std::string text = body.dump();
    sent = text.size();
    httplib::Result r = cli.Post(t.base + endpoint, h, text, "application/json");
    wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!r)
        fail("cloud ", o.url, ": request to ", t.base + endpoint,
             " failed: ", httplib::to_string(r.error()));
    if (r->status != 200) {
        std::string msg = "HTTP " + std::to_string(r->status);
        const json j = json::parse(r->body, nullptr, false);
        if (j.is_object() && j.contains("error") && j["error"].is_object() &&
            j["error"].contains("message") && j["error"]["message"].is_string())
            msg += ": " + j["error"]["message"].get<std::string>().substr(0, 500);
        fail("cloud ", o.url, t.base + endpoint, " answered ", msg);
    }
    return r;
}

uint64_t header_u64(const httplib::Response& r, const char* name) {
    const std::string v = r.get_header_value(name);
    try {
        return v.empty() ? 0 : std::stoull(v);
    } catch (...) {
        return 0;
    }
}

}  // namespace

ServerTimings parse_server_timing(const std::string& header) {
    ServerTimings t;
    size_t i = 0;
    while (i < header.size()) {
        size_t end = header.find(',', i);
        if (end == std::string::npos) end = header.size();
        const std::string item = header.substr(i, end - i);
        const size_t semi = item.find(';');
        const size_t dur = item.find("dur=");
        if (semi != std::string::npos && dur != std::string::npos) {
            std::string name = item.substr(0, semi);
            name.erase(0, name.find_first_not_of(' '));
            double ms = 0;
            try {
                ms = std::stod(item.substr(dur + 4));
            } catch (...) {
            }
            if (name == "queue") t.queue_s = ms / 1e3;
            if (name == "text") t.text_s = ms / 1e3;
            if (name == "sample") t.sample_s = ms / 1e3;
            if (name == "decode") t.decode_s = ms / 1e3;
        }
        i = end + 1;
    }
    return t;
}

LatentReply request_latent(const ImageClientOptions& o, const json& body) {
    LatentReply out;
    httplib::Result r =
        post(o, "/images/latents", body, "application/octet-stream", out.wall_s, out.request_bytes);
    const std::string what = "cloud " + o.url + "/images/latents";
    if (r->get_header_value("Content-Type").find("application/octet-stream") == std::string::npos)
        fail(what, ": expected an application/octet-stream latent, got '",
             r->get_header_value("Content-Type"), "' (is it a duan server?)");
    // Shape "1,4,H,W"
    const std::string shape = r->get_header_value(kLatentShapeHeader);
    int n = 0, c = 0;
    if (std::sscanf(shape.c_str(), "%d,%d,%d,%d", &n, &c, &out.latent_h, &out.latent_w) != 4 ||
        n != 1 || c != 4 || out.latent_h <= 0 || out.latent_w <= 0 || out.latent_h > 4096 ||
        out.latent_w > 4096)
        fail(what, ": bad ", kLatentShapeHeader, " '", shape, "'");
    const std::string space = r->get_header_value(kLatentSpaceHeader);
    if (space != "vae_input") fail(what, ": unknown latent space '", space, "'");
    out.format = latent_format_from_name(r->get_header_value(kLatentFormatHeader));
    out.z = unpack_latent(reinterpret_cast<const uint8_t*>(r->body.data()), r->body.size(),
                          out.format, static_cast<size_t>(4) * out.latent_h * out.latent_w);
    out.seed = header_u64(*r, kSeedHeader);
    if (const std::string sc = r->get_header_value(kLatentScaleHeader); !sc.empty()) {
        char* end = nullptr;
        out.scale = std::strtof(sc.c_str(), &end);
        if (end == sc.c_str() || *end != '\0' || !(out.scale > 0 && out.scale < 100))
            fail(what, ": bad ", kLatentScaleHeader, " '", sc, "'");
    }
    out.variant = r->get_header_value(kModelVariantHeader).substr(0, 32);
    out.body_bytes = r->body.size();
    out.server = parse_server_timing(r->get_header_value("Server-Timing"));
    return out;
}

void check_latent_scale(const LatentReply& r, float device_scale, const std::string& device_model,
                        const std::string& device_variant) {
    const float server = r.scale > 0 ? r.scale : 0.18215f;
    if (r.scale <= 0)
        std::fprintf(stderr,
                     "warning: the server does not state its latent scale (an older duan?); "
                     "assuming SD 1.x's 0.18215\n");
    if (device_scale <= 0) {
        std::fprintf(stderr,
                     "warning: %s has no UNet to tell its variant; cannot check that its VAE "
                     "matches the server's model (%s, latent scale %g)\n",
                     device_model.c_str(), r.variant.empty() ? "?" : r.variant.c_str(), server);
        return;
    }
    if (std::fabs(server - device_scale) > 1e-6f * device_scale)
        fail("the server's model is ", r.variant.empty() ? "unknown" : r.variant, " (latent scale ",
             server, ") but this device's checkpoint ", device_model, " is ", device_variant,
             " (latent scale ", device_scale,
             "): its VAE cannot decode that latent; give -m a checkpoint of the server's variant");
}

PngReply request_png(const ImageClientOptions& o, const json& body_in) {
    json body = body_in;
    body["response_format"] = "b64_json";
    body["n"] = 1;
    PngReply out;
    httplib::Result r =
        post(o, "/images/generations", body, "application/json", out.wall_s, out.request_bytes);
    const std::string what = "cloud " + o.url + "/images/generations";
    const json j = json::parse(r->body, nullptr, false);
    if (!j.is_object() || !j.contains("data") || !j["data"].is_array() || j["data"].empty() ||
        !j["data"][0].is_object() || !j["data"][0].contains("b64_json") ||
        !j["data"][0]["b64_json"].is_string())
        fail(what, ": the answer has no data[0].b64_json");
    auto png = base64_decode(j["data"][0]["b64_json"].get_ref<const std::string&>());
    if (!png) fail(what, ": data[0].b64_json is not valid base64");
    out.png = std::move(*png);
    out.seed = header_u64(*r, kSeedHeader);
    out.body_bytes = r->body.size();
    out.server = parse_server_timing(r->get_header_value("Server-Timing"));
    return out;
}

}  // namespace duan::serve
