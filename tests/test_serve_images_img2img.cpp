// img2img through the server: "image" (a base64 PNG) and "strength" in the JSON body of
// /v1/images/generations and /v1/images/latents. The answer equals a local
// `duan image --init ... --strength ...` run with the same seed, byte for byte (whole PNG, the
// split, and the CLI's --cloud); bad init images and strengths are 400 with OpenAI's error body.
#include <gtest/gtest.h>

#include <filesystem>

#include "diffusion/img2img.h"
#include "diffusion/parameters.h"
#include "diffusion/png.h"
#include "diffusion/png_read.h"
#include "sd_fixture.h"
#include "sd_test_util.h"
#include "serve/base64.h"
#include "serve/image_api.h"
#include "serve/latent_wire.h"
#include "serve_image_util.h"

using namespace duan;
using namespace duan::diffusion;
using nlohmann::json;

namespace {

// A 64x64 (or w x h) RGB gradient as PNG bytes.
std::vector<uint8_t> gradient_png(int w = 64, int h = 64) {
    std::vector<uint8_t> rgb(static_cast<size_t>(w) * h * 3);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            uint8_t* p = &rgb[(static_cast<size_t>(y) * w + x) * 3];
            p[0] = static_cast<uint8_t>(x * 4);
            p[1] = static_cast<uint8_t>(y * 4);
            p[2] = static_cast<uint8_t>(128 + (x ^ y));
        }
    return encode_png(rgb.data(), w, h);
}

std::string b64(const std::vector<uint8_t>& v) {
    return serve::base64_encode(v.data(), v.size());
}

void expect_400(const httplib::Result& r, const std::string& param, const std::string& what) {
    ASSERT_TRUE(r) << what;
    EXPECT_EQ(r->status, 400) << what << ": " << r->body;
    const json j = json::parse(r->body, nullptr, false);
    ASSERT_TRUE(j.is_object() && j.contains("error")) << what << ": " << r->body;
    EXPECT_EQ(j["error"]["type"], "invalid_request_error") << what;
    EXPECT_EQ(j["error"]["param"], param.empty() ? json() : json(param)) << what << ": " << r->body;
}

}  // namespace

TEST(ServeImagesImg2Img, RequestParsing) {
    serve::ImageLimits lim;
    const std::string img = b64(gradient_png(128, 64));
    auto r = serve::parse_image_request(R"({"prompt":"x","image":")" + img + R"("})", lim);
    EXPECT_EQ(r.params.width, 128);  // the image's size is the output size
    EXPECT_EQ(r.params.height, 64);
    EXPECT_EQ(r.init.rgb.size(), 128u * 64 * 3);
    EXPECT_FLOAT_EQ(r.init.strength, 0.75f);
    r = serve::parse_image_request(R"({"prompt":"x","size":"128x64","strength":0,"image":")" +
                                       std::string("data:image/png;base64,") + img + R"("})",
                                   lim);
    EXPECT_EQ(r.init.strength, 0.0f);
    EXPECT_EQ(r.params.width, 128);
    r = serve::parse_image_request(
        R"({"prompt":"x","size":"auto","strength":1,"image":")" + img + R"("})", lim);
    EXPECT_EQ(r.init.strength, 1.0f);
    EXPECT_TRUE(serve::parse_image_request(R"({"prompt":"x"})", lim).init.rgb.empty());

    serve::ImageLimits small = lim;
    small.max_side = 64;
    const std::string odd = b64(gradient_png(72, 64));
    const std::string png64 = b64(gradient_png());
    const std::string not_png = b64(std::vector<uint8_t>{'G', 'I', 'F', '8', '9', 'a', 0, 0});
    auto truncated = gradient_png();
    truncated.resize(truncated.size() / 2);
    struct Bad {
        std::string body, param;
        const serve::ImageLimits* lim;
    };
    const std::string x = R"({"prompt":"x",)";
    for (const Bad& b : std::vector<Bad>{
             {x + R"("image":5})", "image", &lim},
             {x + R"("image":"not base64!"})", "image", &lim},
             {x + R"("image":")" + not_png + R"("})", "image", &lim},
             {x + R"("image":")" + b64(truncated) + R"("})", "image", &lim},
             {x + R"("image":"data:image/png,)" + png64 + R"("})", "image", &lim},
             {x + R"("image":")" + odd + R"("})", "image", &lim},
             {x + R"("image":")" + img + R"("})", "image", &small},  // 128 > max_side 64
             {x + R"("size":"64x64","image":")" + img + R"("})", "size", &lim},
             {x + R"("strength":1.5,"image":")" + png64 + R"("})", "strength", &lim},
             {x + R"("strength":-0.1,"image":")" + png64 + R"("})", "strength", &lim},
             {x + R"("strength":"0.5","image":")" + png64 + R"("})", "strength", &lim},
             {x + R"("strength":0.5})", "strength", &lim},
         }) {
        try {
            serve::parse_image_request(b.body, *b.lim);
            ADD_FAILURE() << "accepted: " << b.body.substr(0, 120);
        } catch (const hybrid::ApiError& e) {
            EXPECT_EQ(e.status, 400) << b.body.substr(0, 120);
            EXPECT_EQ(e.param, b.param) << b.body.substr(0, 120) << ": " << e.what();
        }
    }
}

// The must-show test: the server's img2img equals a local `duan image --init` run, byte for byte.
TEST(ServeImagesImg2Img, ServerMatchesLocalRun) {
    DUAN_REQUIRE_TESTDATA("sd/clip/merges.txt");
    DUAN_REQUIRE_SD_CHECKPOINT(dir);
    const std::string ckpt = test::tiny_sd1_path(dir);
    test::ImageServer s(ckpt, "tiny_sd1_s0_f32");
    test::TmpDir tmp;
    const auto init_png = gradient_png();
    const std::string init = tmp.path + "/init.png";
    write_png(init, decode_png(init_png.data(), init_png.size(), "init").rgb.data(), 64, 64);
    const auto init_file = test::read_file_bytes(init);

    const std::string cli = std::string(DUAN_BINARY) +
                            " image -p 'a red ball on the grass' --steps 4 --sampler euler_a "
                            "--seed 42 --init " +
                            init + " --strength 0.5 -o ";
    auto [rc, log] = test::run_command(cli + tmp.path + "/local.png -m " + ckpt +
                                       " --clip-merges " + test::testdata("sd/clip/merges.txt"));
    ASSERT_EQ(rc, 0) << log;
    const auto want = test::read_file_bytes(tmp.path + "/local.png");
    ASSERT_FALSE(want.empty());
    const std::string params = a1111_parameters(
        [] {
            Txt2ImgParams p;
            p.prompt = "a red ball on the grass";
            p.steps = 4;
            p.seed = 42;
            p.width = p.height = 64;
            return p;
        }(),
        "tiny_sd1_s0_f32", 0.5f);
    ASSERT_NE(params.find("Denoising strength: 0.5"), std::string::npos) << params;

    // The OpenAI endpoint, the image as base64 and as a data URL.
    json body = {{"prompt", "a red ball on the grass"},
                 {"steps", 4},
                 {"seed", 42},
                 {"sampler", "euler_a"},
                 {"image", b64(init_file)},
                 {"strength", 0.5}};
    for (const std::string prefix : {"", "data:image/png;base64,"}) {
        json b = body;
        b["image"] = prefix + b64(init_file);
        auto r = s.client()->Post("/v1/images/generations", b.dump(), "application/json");
        ASSERT_TRUE(r);
        ASSERT_EQ(r->status, 200) << r->body.substr(0, 500);
        const json j = json::parse(r->body);
        const auto png = serve::base64_decode(j["data"][0]["b64_json"].get<std::string>());
        ASSERT_TRUE(png);
        EXPECT_EQ(*png, want) << "server img2img PNG differs from the local run's (" << prefix
                              << ")";
        EXPECT_EQ(j["timings"]["steps"], 3);  // int(4·0.5) + 1
    }

    // The latents endpoint: the exact VAE input of the local img2img run.
    Img2ImgParams ip;
    ip.prompt = "a red ball on the grass";
    ip.steps = 4;
    ip.seed = 42;
    ip.width = ip.height = 64;
    ip.init_rgb = decode_png(init_file.data(), init_file.size(), "init").rgb;
    ip.strength = 0.5f;
    const Txt2ImgResult lat = s.sd->img2img(ip, {}, /*decode=*/false);
    EXPECT_TRUE(lat.rgb.empty());
    body["latent_format"] = "f32";
    auto r = s.client()->Post("/v1/images/latents", body.dump(), "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body.substr(0, 500);
    const json j = json::parse(r->body);
    const auto bytes = serve::base64_decode(j["data"][0]["latent"].get<std::string>());
    ASSERT_TRUE(bytes);
    const auto z =
        serve::unpack_latent(bytes->data(), bytes->size(), serve::LatentFormat::F32, 256);
    for (size_t i = 0; i < z.size(); ++i) ASSERT_EQ(z[i], lat.latent[i] / 0.18215f) << i;

    // `duan image --cloud URL [--split vae] --init ... --strength ...` writes the same file.
    for (const std::string& split : {std::string(), " --split vae -m " + ckpt}) {
        const std::string out = tmp.path + "/cloud.png";
        auto [rc2, log2] = test::run_command(cli + out + " --cloud " + s.url() + split);
        ASSERT_EQ(rc2, 0) << log2;
        EXPECT_EQ(test::read_file_bytes(out), want) << "--cloud" << split << ": " << log2;
    }
}

TEST(ServeImagesImg2Img, BadInitImagesAre400) {
    DUAN_REQUIRE_TESTDATA("sd/clip/merges.txt");
    DUAN_REQUIRE_SD_CHECKPOINT(dir);
    test::ImageServer s(test::tiny_sd1_path(dir), "tiny_sd1_s0_f32");
    auto c = s.client();
    const std::string png64 = b64(gradient_png());
    for (const char* ep : {"/v1/images/generations", "/v1/images/latents"}) {
        const std::string x = R"({"prompt":"x","steps":1,)";
        expect_400(c->Post(ep, x + R"("image":"%%%"})", "application/json"), "image", "not base64");
        expect_400(c->Post(ep, x + R"("image":")" + b64({'n', 'o', 'p', 'e'}) + R"("})",
                           "application/json"),
                   "image", "not a PNG");
        expect_400(c->Post(ep, x + R"("image":")" + b64(gradient_png(64, 72)) + R"("})",
                           "application/json"),
                   "image", "72 pixels high");
        expect_400(c->Post(ep, x + R"("image":")" + b64(gradient_png(1024, 64)) + R"("})",
                           "application/json"),
                   "image", "wider than the server's limit");
        expect_400(
            c->Post(ep, x + R"("size":"128x128","image":")" + png64 + R"("})", "application/json"),
            "size", "size differs from the image");
        expect_400(
            c->Post(ep, x + R"("strength":2,"image":")" + png64 + R"("})", "application/json"),
            "strength", "strength 2");
        expect_400(c->Post(ep, x + R"("strength":0.5})", "application/json"), "strength",
                   "strength without an image");
    }
    auto r = c->Get("/metrics");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body.find("status=\"500\""), std::string::npos) << r->body;
}

// OpenAI's multipart /v1/images/edits: the same img2img as the JSON "image" field.
TEST(ServeImagesImg2Img, MultipartEditsEndpoint) {
    DUAN_REQUIRE_TESTDATA("sd/clip/merges.txt");
    DUAN_REQUIRE_SD_CHECKPOINT(dir);
    test::ImageServer s(test::tiny_sd1_path(dir), "tiny_sd1_s0_f32");
    auto c = s.client();
    const auto init = gradient_png();
    const json body = {{"prompt", "a red ball"},
                       {"steps", 2},
                       {"seed", 7},
                       {"image", b64(init)},
                       {"strength", 0.5}};
    auto r = c->Post("/v1/images/generations", body.dump(), "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body.substr(0, 300);
    const auto want = json::parse(r->body)["data"][0]["b64_json"];

    httplib::MultipartFormDataItems form = {
        {"image", std::string(init.begin(), init.end()), "in.png", "image/png"},
        {"prompt", "a red ball", "", ""},
        {"steps", "2", "", ""},
        {"seed", "7", "", ""},
        {"strength", "0.5", "", ""},
        {"response_format", "b64_json", "", ""}};
    r = c->Post("/v1/images/edits", form);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body.substr(0, 300);
    EXPECT_EQ(json::parse(r->body)["data"][0]["b64_json"], want);

    auto with = [&](httplib::MultipartFormDataItems f, httplib::MultipartFormData extra) {
        f.push_back(std::move(extra));
        return f;
    };
    expect_400(c->Post("/v1/images/edits", with(form, {"mask", "x", "m.png", "image/png"})), "mask",
               "a mask");
    expect_400(c->Post("/v1/images/edits", with(form, {"steps", "3", "", ""})), "steps",
               "steps twice");
    httplib::MultipartFormDataItems bad = form;
    bad[2].content = "four";
    expect_400(c->Post("/v1/images/edits", bad), "steps", "steps not a number");
    bad = form;
    bad.erase(bad.begin());
    expect_400(c->Post("/v1/images/edits", bad), "image", "no image");
    bad = form;
    bad[0].content = "not a png";
    expect_400(c->Post("/v1/images/edits", bad), "image", "not a PNG");
    expect_400(c->Post("/v1/images/edits", body.dump(), "application/json"), "", "JSON body");
}
