// Helpers of the image-endpoint tests (tests/test_serve_images*.cpp): a Stable Diffusion model
// behind an in-process server with only the image endpoints, on an ephemeral loopback port; and
// running the `duan` binary.
#pragma once
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/thread_pool.h"
#include "diffusion/pipeline.h"
#include "hybrid/metrics.h"
#include "hybrid/router.h"
#include "serve/http.h"
#include "serve/http_server.h"
#include "serve/image_api.h"
#include "testdata.h"

namespace duan::test {

inline std::string tiny_sd1_path(const std::string& dir) {
    return dir + "/tiny_sd1_s0_f32.safetensors";
}

// The model, an ImageService and a server with only the image endpoints, on an ephemeral port.
struct ImageServer {
    std::unique_ptr<diffusion::StableDiffusion> sd;
    hybrid::Metrics metrics;
    std::unique_ptr<hybrid::Router> router;
    std::unique_ptr<serve::ImageService> images;
    std::unique_ptr<serve::HttpServer> server;
    ImageServer(const std::string& ckpt, const std::string& model_name,
                const std::string& api_key = "", int max_steps = 50) {
        sd = std::make_unique<diffusion::StableDiffusion>(ckpt, testdata("sd/clip/merges.txt"),
                                                          default_thread_count());
        router =
            std::make_unique<hybrid::Router>(nullptr, nullptr, hybrid::Policy{}, nullptr, &metrics);
        serve::ImageLimits lim;
        lim.max_side = 512;
        lim.max_pixels = 512 * 512;
        lim.max_steps = max_steps;
        images = std::make_unique<serve::ImageService>(*sd, model_name, lim);
        serve::ServerOptions o;
        o.port = 0;
        o.api_key = api_key;
        server = std::make_unique<serve::HttpServer>(*router, metrics, o);
        serve::install_image_api(*server, *images, metrics);
        server->start();
    }
    ~ImageServer() { server->stop(); }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(server->port()) + "/v1"; }
    std::unique_ptr<httplib::Client> client() const {
        auto c = std::make_unique<httplib::Client>("127.0.0.1", server->port());
        c->set_read_timeout(300, 0);
        return c;
    }
};

// Runs a shell command (stderr folded into stdout): {exit code, output}.
inline std::pair<int, std::string> run_command(const std::string& cmd) {
    std::unique_ptr<FILE, int (*)(FILE*)> f(popen((cmd + " 2>&1").c_str(), "r"), pclose);
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f.get())) > 0) out.append(buf, n);
    const int st = pclose(f.release());
    return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

inline std::vector<uint8_t> read_file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace duan::test
