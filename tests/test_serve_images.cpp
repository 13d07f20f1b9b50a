// The image endpoints of `duan serve --sd-model` and the device/cloud split, on loopback with the
// generated tiny SD1 checkpoint: the split (cloud samples, device decodes the F16 latent with its
// own VAE) gives exactly the image of a local run, through the library client and through
// `duan image --cloud URL --split vae`; bad requests are 400 with OpenAI's error body.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <memory>

#include "core/error.h"
#include "core/fp16.h"
#include "diffusion/parameters.h"
#include "diffusion/png.h"
#include "diffusion/png_read.h"
#include "diffusion/sd_synth.h"
#include "sd_fixture.h"
#include "sd_test_util.h"
#include "serve/base64.h"
#include "serve/image_api.h"
#include "serve/image_client.h"
#include "serve/latent_wire.h"
#include "serve_image_util.h"
#include "test_serve_util.h"

using namespace duan;
using namespace duan::diffusion;
using nlohmann::json;

namespace {

std::string ckpt_path(const std::string& dir) {
    return test::tiny_sd1_path(dir);
}

struct ImageServer : test::ImageServer {
    explicit ImageServer(const std::string& dir, const std::string& api_key = "")
        : test::ImageServer(ckpt_path(dir), "tiny_sd1_s0_f32", api_key) {}
};

Txt2ImgParams settings() {
    Txt2ImgParams p;
    p.prompt = "a red ball on the grass";
    p.seed = 42;
    p.steps = 4;
    p.cfg = 7.0f;
    p.width = p.height = 64;
    p.sampler = Sampler::EulerA;
    p.rng = "cuda";
    return p;
}

json body_of(const Txt2ImgParams& p) {
    return {{"prompt", p.prompt}, {"size", "64x64"},    {"seed", p.seed},
            {"steps", p.steps},   {"cfg_scale", p.cfg}, {"sampler", sampler_name(p.sampler)},
            {"rng", p.rng}};
}

void expect_400(const httplib::Result& r, const std::string& param, const std::string& what) {
    ASSERT_TRUE(r) << what;
    EXPECT_EQ(r->status, 400) << what << ": " << r->body;
    const json j = json::parse(r->body, nullptr, false);
    ASSERT_TRUE(j.is_object() && j.contains("error")) << what << ": " << r->body;
    EXPECT_EQ(j["error"]["type"], "invalid_request_error") << what;
    EXPECT_TRUE(j["error"]["message"].is_string()) << what;
    if (!param.empty()) {
        EXPECT_EQ(j["error"]["param"], param) << what << ": " << r->body;
    }
}

}  // namespace

TEST(ServeImages, Base64AndLatentWire) {
    for (std::string s : {"", "a", "ab", "abc", "abcd", "hello world!"}) {
        const auto e = serve::base64_encode(reinterpret_cast<const uint8_t*>(s.data()), s.size());
        const auto d = serve::base64_decode(e);
        ASSERT_TRUE(d) << e;
        EXPECT_EQ(std::string(d->begin(), d->end()), s);
    }
    EXPECT_EQ(serve::base64_encode(reinterpret_cast<const uint8_t*>("Man"), 3), "TWFu");
    EXPECT_FALSE(serve::base64_decode("TWF"));
    EXPECT_FALSE(serve::base64_decode("TW=u"));
    EXPECT_FALSE(serve::base64_decode("T*Fu"));

    const std::vector<float> z = {0.0f, -1.5f, 1e-3f, 65504.0f, 1.0f / 3.0f};
    auto f32 = serve::pack_latent(z, serve::LatentFormat::F32);
    EXPECT_EQ(serve::unpack_latent(f32.data(), f32.size(), serve::LatentFormat::F32, 5), z);
    auto f16 = serve::pack_latent(z, serve::LatentFormat::F16);
    ASSERT_EQ(f16.size(), 10u);
    auto back = serve::unpack_latent(f16.data(), f16.size(), serve::LatentFormat::F16, 5);
    for (size_t i = 0; i < z.size(); ++i) EXPECT_EQ(back[i], round_fp16(z[i])) << i;
    EXPECT_THROW(serve::unpack_latent(f16.data(), 9, serve::LatentFormat::F16, 5), duan::Error);

    auto t = serve::parse_server_timing("queue;dur=1.5, text;dur=200, sample;dur=3000.5");
    EXPECT_DOUBLE_EQ(t.queue_s, 0.0015);
    EXPECT_DOUBLE_EQ(t.text_s, 0.2);
    EXPECT_DOUBLE_EQ(t.sample_s, 3.0005);
    EXPECT_EQ(t.decode_s, 0.0);
}

TEST(ServeImages, RequestValidation) {
    serve::ImageLimits lim;
    auto r = serve::parse_image_request(R"({"prompt":"a cat"})", lim);
    EXPECT_EQ(r.params.width, 512);
    EXPECT_EQ(r.params.steps, 20);
    EXPECT_EQ(r.n, 1);
    r = serve::parse_image_request(
        R"({"prompt":"a cat","size":"256x128","seed":7,"steps":3,"cfg_scale":4.5,
            "sampler":"dpm++2m","scheduler":"karras","rng":"cpu","n":2,"latent_format":"f32",
            "negative_prompt":"blurry","quality":"hd","user":"u1"})",
        lim);
    EXPECT_EQ(r.params.width, 256);
    EXPECT_EQ(r.params.height, 128);
    EXPECT_EQ(r.params.seed, 7u);
    EXPECT_EQ(r.params.sampler, Sampler::DpmPP2M);
    EXPECT_EQ(r.params.scheduler, Scheduler::Karras);
    EXPECT_EQ(r.params.negative, "blurry");
    EXPECT_EQ(r.latent_format, serve::LatentFormat::F32);
    struct Bad {
        const char* body;
        const char* param;
    };
    for (const Bad& b : std::initializer_list<Bad>{
             {"{", ""},
             {"[1]", ""},
             {R"({"size":"64x64"})", "prompt"},
             {R"({"prompt":""})", "prompt"},
             {R"({"prompt":5})", "prompt"},
             {R"({"prompt":"x","size":"100x60"})", "size"},
             {R"({"prompt":"x","size":"60x64"})", "size"},
             {R"({"prompt":"x","size":"64"})", "size"},
             {R"({"prompt":"x","size":"-64x64"})", "size"},
             {R"({"prompt":"x","size":"4096x4096"})", "size"},
             {R"({"prompt":"x","size":"2048x64"})", "size"},
             {R"({"prompt":"x","steps":0})", "steps"},
             {R"({"prompt":"x","steps":1000})", "steps"},
             {R"({"prompt":"x","steps":2.5})", "steps"},
             {R"({"prompt":"x","n":0})", "n"},
             {R"({"prompt":"x","n":true})", "n"},
             {R"({"prompt":"x","cfg_scale":"7"})", "cfg_scale"},
             {R"({"prompt":"x","cfg_scale":-1})", "cfg_scale"},
             {R"({"prompt":"x","seed":"42"})", "seed"},
             {R"({"prompt":"x","sampler":"heun"})", "sampler"},
             {R"({"prompt":"x","scheduler":"exp"})", "scheduler"},
             {R"({"prompt":"x","rng":"gpu"})", "rng"},
             {R"({"prompt":"x","response_format":"url"})", "response_format"},
             {R"({"prompt":"x","output_format":"jpeg"})", "output_format"},
             {R"({"prompt":"x","latent_format":"bf16"})", "latent_format"},
         }) {
        try {
            serve::parse_image_request(b.body, lim);
            ADD_FAILURE() << "accepted: " << b.body;
        } catch (const hybrid::ApiError& e) {
            EXPECT_EQ(e.status, 400) << b.body;
            EXPECT_EQ(e.param, b.param) << b.body << ": " << e.what();
        }
    }
}

// The must-show test: split mode on loopback gives the local image, bit for bit.
TEST(ServeImages, SplitVaeGivesTheLocalImage) {
    DUAN_REQUIRE_TESTDATA("sd/clip/merges.txt");
    DUAN_REQUIRE_SD_CHECKPOINT(dir);
    ImageServer s(dir);
    const Txt2ImgParams p = settings();
    const Txt2ImgResult local = s.sd->txt2img(p);

    // The device: only a VAE decoder from its own copy of the checkpoint.
    Checkpoint ck(ckpt_path(dir));
    VaeDecoder vae(ck);
    ThreadPool pool(2);
    serve::ImageClientOptions o;
    o.url = s.url();
    const serve::LatentReply r = serve::request_latent(o, body_of(p));
    EXPECT_EQ(r.body_bytes, 4u * 8 * 8 * 2);  // F16: 2 bytes a value
    EXPECT_EQ(r.format, serve::LatentFormat::F16);
    EXPECT_EQ(r.seed, 42u);
    EXPECT_EQ(r.scale, 0.18215f);
    EXPECT_EQ(r.variant, "sd1");
    EXPECT_GT(r.server.sample_s, 0.0);
    const auto rgb = image_to_rgb8(vae.decode(pool, r.z, r.latent_h, r.latent_w), 64, 64);
    EXPECT_EQ(rgb, local.rgb) << "the split image differs from the local one";
    const auto text = a1111_parameters(p, "tiny_sd1_s0_f32");
    EXPECT_EQ(encode_png(rgb.data(), 64, 64, {{"parameters", text}}),
              encode_png(local.rgb.data(), 64, 64, {{"parameters", text}}));

    // JSON answer, F32: the exact VAE input.
    json b = body_of(p);
    b["latent_format"] = "f32";
    auto res = s.client()->Post("/v1/images/latents", b.dump(), "application/json");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_NE(res->get_header_value("Server-Timing").find("sample;dur="), std::string::npos);
    const json j = json::parse(res->body);
    EXPECT_EQ(j["latent"]["shape"], json({1, 4, 8, 8}));
    EXPECT_EQ(j["latent"]["space"], "vae_input");
    EXPECT_EQ(j["latent"]["scaling_factor"], 0.18215);
    EXPECT_EQ(j["latent"]["model_variant"], "sd1");
    const auto bytes = serve::base64_decode(j["data"][0]["latent"].get<std::string>());
    ASSERT_TRUE(bytes);
    auto z = serve::unpack_latent(bytes->data(), bytes->size(), serve::LatentFormat::F32, 256);
    for (size_t i = 0; i < z.size(); ++i)
        ASSERT_EQ(z[i], local.latent[i] / VaeDecoder::kScale) << i;

    // The whole PNG through the OpenAI endpoint: the same pixels and the same bytes.
    const serve::PngReply png = serve::request_png(o, body_of(p));
    EXPECT_EQ(png.png, encode_png(local.rgb.data(), 64, 64, {{"parameters", text}}));
    std::printf("[split 64x64] latent %zu bytes vs PNG response %zu bytes (PNG %zu)\n",
                r.body_bytes, png.body_bytes, png.png.size());
}

// `duan image --cloud URL --split vae` (and without --split) against the in-process server: the
// PNG files equal what a local run writes.
TEST(ServeImages, CliSplitMatchesLocal) {
    DUAN_REQUIRE_TESTDATA("sd/clip/merges.txt");
    DUAN_REQUIRE_SD_CHECKPOINT(dir);
    ImageServer s(dir, "sekret");
    const Txt2ImgParams p = settings();
    const auto local = s.sd->txt2img(p);
    const auto want = encode_png(local.rgb.data(), 64, 64,
                                 {{"parameters", a1111_parameters(p, "tiny_sd1_s0_f32")}});
    const std::string out = (std::filesystem::temp_directory_path() /
                             ("duan_split_" + std::to_string(getpid()) + ".png"))
                                .string();
    auto run = [&](const std::string& extra) {
        const std::string cmd = std::string(DUAN_BINARY) +
                                " image -p 'a red ball on the grass' --steps 4 -W 64 -H 64 "
                                "--sampler euler_a --seed 42 --cloud " +
                                s.url() + " --cloud-key sekret -o " + out + " " + extra + " 2>&1";
        std::unique_ptr<FILE, int (*)(FILE*)> f(popen(cmd.c_str(), "r"), pclose);
        std::string o;
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f.get())) > 0) o.append(buf, n);
        const int st = pclose(f.release());
        EXPECT_EQ(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0) << o;
        std::ifstream in(out, std::ios::binary);
        std::vector<uint8_t> got((std::istreambuf_iterator<char>(in)),
                                 std::istreambuf_iterator<char>());
        std::remove(out.c_str());
        return std::make_pair(o, got);
    };
    auto [log, got] = run("--split vae -m " + ckpt_path(dir));
    std::printf("%s", log.c_str());
    EXPECT_NE(log.find("received 512 bytes (f16 latent 1x4x8x8)"), std::string::npos) << log;
    EXPECT_NE(log.find("device: VAE load"), std::string::npos) << log;
    EXPECT_EQ(got, want) << "duan image --split vae wrote a different PNG than a local run";
    auto [log2, got2] = run("");
    EXPECT_EQ(got2, want) << log2;
    // A wrong key: the client reports the server's error and fails.
    const std::string cmd = std::string(DUAN_BINARY) + " image -p x -W 64 -H 64 --cloud " +
                            s.url() + " --cloud-key wrong -o " + out + " 2>&1";
    std::unique_ptr<FILE, int (*)(FILE*)> f(popen(cmd.c_str(), "r"), pclose);
    char buf[4096];
    const size_t n = fread(buf, 1, sizeof buf, f.get());
    const std::string o(buf, n);
    EXPECT_NE(WEXITSTATUS(pclose(f.release())), 0);
    EXPECT_NE(o.find("HTTP 401"), std::string::npos) << o;
}

TEST(ServeImages, HttpErrorsAre400NotServerErrors) {
    DUAN_REQUIRE_TESTDATA("sd/clip/merges.txt");
    DUAN_REQUIRE_SD_CHECKPOINT(dir);
    ImageServer s(dir);
    auto c = s.client();
    for (const char* ep : {"/v1/images/generations", "/v1/images/latents"}) {
        expect_400(c->Post(ep, "{not json", "application/json"), "", "bad JSON");
        expect_400(c->Post(ep, R"({"size":"64x64"})", "application/json"), "prompt",
                   "missing prompt");
        expect_400(c->Post(ep, R"({"prompt":"x","size":"72x64"})", "application/json"), "size",
                   "size not a multiple of 64");
        expect_400(c->Post(ep, R"({"prompt":"x","size":"1024x1024"})", "application/json"), "size",
                   "size over the server's limit");
        expect_400(c->Post(ep, R"({"prompt":"x","size":"64x64","steps":51})", "application/json"),
                   "steps", "steps over the limit");
        expect_400(c->Post(ep, R"({"prompt":"x","size":"64x64","steps":0})", "application/json"),
                   "steps", "zero steps");
    }
    httplib::Headers octet = {{"Accept", "application/octet-stream"}};
    expect_400(c->Post("/v1/images/latents", octet, R"({"prompt":"x","size":"64x64","n":2})",
                       "application/json"),
               "n", "two latents as octet-stream");
    // n = 2 in JSON: two images, seeds seed and seed+1.
    auto r =
        c->Post("/v1/images/generations",
                R"({"prompt":"x","size":"64x64","n":2,"steps":1,"seed":5})", "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    const json j = json::parse(r->body);
    ASSERT_EQ(j["data"].size(), 2u);
    EXPECT_EQ(j["data"][1]["seed"], 6);
    const auto png = serve::base64_decode(j["data"][0]["b64_json"].get<std::string>());
    ASSERT_TRUE(png);
    EXPECT_EQ(decode_png(png->data(), png->size(), "b64_json").width, 64);
    r = c->Get("/metrics");
    ASSERT_TRUE(r);
    EXPECT_NE(r->body.find("duan_requests_total{endpoint=\"images\",status=\"400\""),
              std::string::npos);
    EXPECT_EQ(r->body.find("status=\"500\""), std::string::npos) << r->body;
}

// SDXL's VAE takes latent / 0.13025, not SD 1.x's / 0.18215: the latents endpoint divides by the
// model's own scale and says which (header, JSON), and the device refuses a latent whose scale is
// not its VAE's. With a synthetic SDXL checkpoint (diffusion/sd_synth.h) the split still gives
// the local image.
TEST(ServeImages, SdxlSplitUsesItsScaleAndTheDeviceChecksIt) {
    DUAN_REQUIRE_TESTDATA("sd/clip/merges.txt");
    DUAN_REQUIRE_SD_CHECKPOINT(dir);
    // A tiny SDXL (as SdVariants.SdxlPromptToImage: 2-layer text encoders at the real widths)
    // with a random 32-wide VAE of its own, F32.
    SdSynthSpec spec;
    spec.name = "tiny_sdxl";
    spec.mc = 32;
    spec.mult = {1, 2};
    spec.depth = {0, 2};
    spec.ctx = 2048;
    spec.adm = 2816;
    spec.linear_proj = true;
    spec.text = {{"conditioner.embedders.0.transformer.text_model.", 768, 2, 64, 64, 77, false, 0},
                 {"conditioner.embedders.1.model.", 1280, 2, 64, 64, 77, true, 1280}};
    spec.vae_spec.enc_ch = spec.vae_spec.dec_ch = 32;
    test::TmpDir tmp("duan_sdxl_split");
    const std::string xl = tmp.path + "/tiny_sdxl.gguf";
    SdConvertOptions co;
    co.type = DType::F32;
    write_sd_synth(spec, xl, 3, co);
    test::ImageServer s(xl, "tiny_sdxl");
    ASSERT_EQ(s.sd->version(), SdVersion::SDXL);
    EXPECT_FLOAT_EQ(s.sd->latent_scale(), 0.13025f);
    Txt2ImgParams p = settings();
    p.steps = 2;
    const Txt2ImgResult local = s.sd->txt2img(p);

    serve::ImageClientOptions o;
    o.url = s.url();
    const serve::LatentReply r = serve::request_latent(o, body_of(p));
    EXPECT_EQ(r.scale, 0.13025f);
    EXPECT_EQ(r.variant, "sdxl");
    serve::check_latent_scale(r, latent_scale_of(SdVersion::SDXL), xl, "sdxl");  // passes
    try {
        serve::check_latent_scale(r, latent_scale_of(SdVersion::SD1), "sd15.safetensors", "sd1");
        ADD_FAILURE() << "an SD1 VAE accepted an SDXL latent";
    } catch (const Error& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("sdxl (latent scale 0.13025)"), std::string::npos) << m;
        EXPECT_NE(m.find("sd15.safetensors is sd1 (latent scale 0.18215)"), std::string::npos) << m;
    }
    Checkpoint ck(xl);
    VaeDecoder vae(ck);
    ThreadPool pool(2);
    EXPECT_EQ(image_to_rgb8(vae.decode(pool, r.z, r.latent_h, r.latent_w), 64, 64), local.rgb);

    // JSON: the exact VAE input, and the scale and variant it was made with.
    json b = body_of(p);
    b["latent_format"] = "f32";
    auto res = s.client()->Post("/v1/images/latents", b.dump(), "application/json");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    const json j = json::parse(res->body);
    EXPECT_EQ(j["latent"]["scaling_factor"], 0.13025);
    EXPECT_EQ(j["latent"]["model_variant"], "sdxl");
    const auto bytes = serve::base64_decode(j["data"][0]["latent"].get<std::string>());
    ASSERT_TRUE(bytes);
    auto z = serve::unpack_latent(bytes->data(), bytes->size(), serve::LatentFormat::F32, 256);
    for (size_t i = 0; i < z.size(); ++i) ASSERT_EQ(z[i], local.latent[i] / 0.13025f) << i;

    // The CLI: an SD1 device checkpoint is refused by name; the SDXL one decodes the local image.
    const std::string out = tmp.path + "/split.png";
    const std::string cmd = std::string(DUAN_BINARY) +
                            " image -p 'a red ball on the grass' --steps 2 -W 64 -H 64 "
                            "--sampler euler_a --seed 42 --cloud " +
                            s.url() + " --split vae -o " + out + " -m ";
    auto [rc, log] = test::run_command(cmd + ckpt_path(dir));
    EXPECT_NE(rc, 0) << log;
    EXPECT_NE(log.find("its VAE cannot decode that latent"), std::string::npos) << log;
    auto [rc2, log2] = test::run_command(cmd + xl);
    ASSERT_EQ(rc2, 0) << log2;
    EXPECT_EQ(
        test::read_file_bytes(out),
        encode_png(local.rgb.data(), 64, 64, {{"parameters", a1111_parameters(p, "tiny_sdxl")}}));
}
