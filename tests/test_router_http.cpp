// The router over real HTTP on loopback: a fake OpenAI server that answers, refuses, hangs,
// returns 500, cuts its stream midway or sends malformed SSE; and two duan servers, one playing
// the cloud. Every request must get exactly one complete answer or a clear error.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "serve/cloud_client.h"
#include "test_serve_util.h"

using namespace duan;
using namespace duan::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

const char* kJsonType = "application/json";
const char* kHard = "Prove step by step and analyze the algorithm: why? how? what? ```x```";

// A scripted OpenAI-compatible upstream.
class FakeOpenAI {
  public:
    enum Mode { Ok, Hang, Error500, CutMidway, Malformed, PlainJson };
    std::atomic<Mode> mode{Ok};
    std::atomic<int> calls{0};
    std::atomic<bool> stopping{false};
    std::string last_body;
    std::mutex mu;

    FakeOpenAI() {
        svr_.Post("/v1/chat/completions", [this](const httplib::Request& req,
                                                 httplib::Response& res) {
            calls++;
            {
                std::lock_guard<std::mutex> lk(mu);
                last_body = req.body;
            }
            Mode m = mode;
            if (m == Error500) {
                res.status = 500;
                res.set_content(
                    R"({"error":{"message":"upstream exploded","type":"server_error"}})",
                    kJsonType);
                return;
            }
            if (m == PlainJson) {
                res.set_content(
                    R"({"choices":[{"message":{"role":"assistant","content":"plain cloud"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2}})",
                    kJsonType);
                return;
            }
            res.set_chunked_content_provider("text/event-stream", [this, m](
                                                                      size_t,
                                                                      httplib::DataSink& sink) {
                auto send = [&](const std::string& s) { sink.write(s.data(), s.size()); };
                auto chunk = [](const std::string& text) {
                    return "data: " +
                           json{{"choices",
                                 {{{"index", 0},
                                   {"delta", {{"content", text}}},
                                   {"finish_reason", nullptr}}}}}
                               .dump() +
                           "\n\n";
                };
                if (m == Hang) {
                    while (!stopping && sink.is_writable()) std::this_thread::sleep_for(5ms);
                    return false;
                }
                if (m == Malformed) {
                    send("data: {this is not json}\n\n");
                    sink.done();
                    return true;
                }
                send(chunk("cloud "));
                if (m == CutMidway) {
                    std::this_thread::sleep_for(20ms);
                    return false;  // connection dropped without the final chunk
                }
                send(chunk("says hi"));
                send("data: " +
                     json{{"choices",
                           {{{"index", 0}, {"delta", json::object()}, {"finish_reason", "stop"}}}}}
                         .dump() +
                     "\n\n");
                send("data: " +
                     json{{"choices", json::array()},
                          {"usage", {{"prompt_tokens", 11}, {"completion_tokens", 2}}}}
                         .dump() +
                     "\n\n");
                send("data: [DONE]\n\n");
                sink.done();
                return true;
            });
        });
        serve::ListenBacklog backlog(svr_);
        port_ = svr_.bind_to_any_port("127.0.0.1");
        backlog.relisten();
        thread_ = std::thread([this] { svr_.listen_after_bind(); });
        while (!svr_.is_running()) std::this_thread::sleep_for(1ms);
    }
    ~FakeOpenAI() {
        stopping = true;
        svr_.stop();
        thread_.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }

  private:
    httplib::Server svr_;
    int port_ = 0;
    std::thread thread_;
};

hybrid::Policy fast_policy() {
    hybrid::Policy p;
    p.cloud_first_token_timeout_ms = 300;
    return p;
}

serve::CloudOptions cloud_opts(const std::string& url) {
    serve::CloudOptions o;
    o.url = url;
    o.connect_timeout_s = 1;
    o.read_timeout_s = 2;
    return o;
}

std::string route_of(const httplib::Result& r) {
    return r ? r->get_header_value("X-Duan-Route") : "no response";
}

}  // namespace

TEST(RouterHttp, ComplexGoesToCloudSimpleStaysLocal) {
    FakeOpenAI up;
    serve::HttpCloudBackend cloud(cloud_opts(up.url()));
    TestServer s({}, {}, {}, &cloud, fast_policy());
    auto c = s.client();
    auto r = c->Post("/v1/chat/completions", chat_body(kHard, 4, false), kJsonType);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(route_of(r), "cloud; reason=complexity");
    json j = json::parse(r->body);
    EXPECT_EQ(j["choices"][0]["message"]["content"], "cloud says hi");
    EXPECT_EQ(j["usage"]["completion_tokens"], 2);
    {
        // What went upstream: streaming with usage, no duan_* fields.
        std::lock_guard<std::mutex> lk(up.mu);
        json sent = json::parse(up.last_body);
        EXPECT_EQ(sent["stream"], true);
        EXPECT_EQ(sent["stream_options"]["include_usage"], true);
        EXPECT_FALSE(sent.contains("duan_private"));
    }
    r = c->Post("/v1/chat/completions", chat_body("hi", 3, false), kJsonType);
    EXPECT_EQ(route_of(r), "local; reason=default");

    // Streaming through the cloud.
    r = c->Post("/v1/chat/completions", chat_body(kHard, 4, true), kJsonType);
    ASSERT_TRUE(r);
    EXPECT_EQ(route_of(r), "cloud; reason=complexity");
    auto sum = summarize(r->body);
    EXPECT_EQ(sum.text, "cloud says hi");
    EXPECT_EQ(sum.finish_reason, "stop");
    EXPECT_TRUE(sum.done);
    EXPECT_TRUE(sum.role_first);

    auto m = c->Get("/metrics");
    EXPECT_NE(m->body.find("duan_tokens_total{route=\"cloud\",kind=\"completion\"} 4"),
              std::string::npos)
        << m->body;
    EXPECT_NE(m->body.find("duan_route_total{route=\"cloud\",reason=\"complexity\"} 2"),
              std::string::npos);
}

TEST(RouterHttp, PrivateAndPiiNeverReachTheCloud) {
    FakeOpenAI up;
    serve::HttpCloudBackend cloud(cloud_opts(up.url()));
    TestServer s({}, {}, {}, &cloud, fast_policy());
    auto c = s.client();
    httplib::Headers priv = {{"X-Duan-Private", "1"}};
    auto r = c->Post("/v1/chat/completions", priv, chat_body(kHard, 3, false), kJsonType);
    EXPECT_EQ(route_of(r), "local; reason=private");
    r = c->Post("/v1/chat/completions", chat_body(kHard, 3, true, R"("duan_private":true)"),
                kJsonType);
    EXPECT_EQ(route_of(r), "local; reason=private");
    r = c->Post("/v1/chat/completions",
                chat_body(std::string(kHard) + " my ssn is 123-45-6789", 3, false), kJsonType);
    EXPECT_EQ(route_of(r), "local; reason=pii:ssn");
    EXPECT_EQ(up.calls.load(), 0);
}

TEST(RouterHttp, UpstreamFaultsFallBackToLocalBeforeAnythingIsSent) {
    struct Case {
        FakeOpenAI::Mode mode;
        const char* reason;
    } cases[] = {{FakeOpenAI::Hang, "fallback:cloud_timeout"},
                 {FakeOpenAI::Error500, "fallback:cloud_error"},
                 {FakeOpenAI::Malformed, "fallback:cloud_error"}};
    for (bool stream : {false, true}) {
        for (const auto& k : cases) {
            FakeOpenAI up;
            up.mode = k.mode;
            serve::HttpCloudBackend cloud(cloud_opts(up.url()));
            TestServer s({}, {}, {}, &cloud, fast_policy());
            auto r =
                s.client()->Post("/v1/chat/completions", chat_body(kHard, 3, stream), kJsonType);
            ASSERT_TRUE(r);
            ASSERT_EQ(r->status, 200) << r->body;
            EXPECT_EQ(route_of(r), std::string("local; reason=") + k.reason) << k.mode;
            std::string text =
                stream
                    ? summarize(r->body).text
                    : json::parse(r->body)["choices"][0]["message"]["content"].get<std::string>();
            EXPECT_EQ(text, expected_words(3)) << k.mode;
        }
    }
}

TEST(RouterHttp, UnreachableCloudFallsBackAndMarksNetworkDown) {
    // A port that was free a moment ago: bound, never listened on, closed.
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    const int dead_port = ntohs(a.sin_port);
    ::close(fd);
    serve::HttpCloudBackend cloud(
        cloud_opts("http://127.0.0.1:" + std::to_string(dead_port) + "/v1"));
    TestServer s({}, {}, {}, &cloud, fast_policy());
    auto c = s.client();
    auto r = c->Post("/v1/chat/completions", chat_body(kHard, 3, false), kJsonType);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(route_of(r), "local; reason=fallback:cloud_unreachable");
    // The failure marked the network down: the next request is planned locally at once.
    r = c->Post("/v1/chat/completions", chat_body(kHard, 3, false), kJsonType);
    EXPECT_EQ(route_of(r), "local; reason=network_down");
}

TEST(RouterHttp, StreamCutMidwayEndsWithAnErrorEvent) {
    FakeOpenAI up;
    up.mode = FakeOpenAI::CutMidway;
    serve::HttpCloudBackend cloud(cloud_opts(up.url()));
    TestServer s({}, {}, {}, &cloud, fast_policy());
    auto c = s.client();
    auto r = c->Post("/v1/chat/completions", chat_body(kHard, 3, true), kJsonType);
    ASSERT_TRUE(r);
    EXPECT_EQ(route_of(r), "cloud; reason=complexity");
    auto sum = summarize(r->body);
    EXPECT_EQ(sum.text, "cloud ");  // what was sent stays sent, nothing duplicated
    EXPECT_EQ(sum.error_code, "upstream_broken");
    EXPECT_TRUE(sum.done);
    // Non-streamed: nothing was sent yet, so the whole request is redone locally, once.
    r = c->Post("/v1/chat/completions", chat_body(kHard, 3, false), kJsonType);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(route_of(r), "local; reason=fallback:cloud_broken");
    EXPECT_EQ(json::parse(r->body)["choices"][0]["message"]["content"], expected_words(3));
}

TEST(RouterHttp, UpstreamIgnoringStreamTrueStillWorks) {
    FakeOpenAI up;
    up.mode = FakeOpenAI::PlainJson;
    serve::HttpCloudBackend cloud(cloud_opts(up.url()));
    TestServer s({}, {}, {}, &cloud, fast_policy());
    auto r = s.client()->Post("/v1/chat/completions", chat_body(kHard, 3, true), kJsonType);
    ASSERT_TRUE(r);
    EXPECT_EQ(summarize(r->body).text, "plain cloud");
}

TEST(RouterHttp, TwoDuanServersOnePlayingTheCloud) {
    // The "cloud" is another duan with its own fake model and an API key.
    hybrid::FakeEngineOptions cloud_fo;
    cloud_fo.model_id = "big-cloud-model";
    cloud_fo.eog_after = 2;
    serve::ServerOptions cloud_opt;
    cloud_opt.api_key = "cloud-secret";
    TestServer cloud_server(cloud_fo, {}, cloud_opt);
    auto opts = cloud_opts("http://127.0.0.1:" + std::to_string(cloud_server.port()) + "/v1");
    opts.api_key = "cloud-secret";
    serve::HttpCloudBackend cloud(opts);
    hybrid::FakeEngineOptions edge_fo;
    edge_fo.n_slots = 2;
    edge_fo.step_delay = 1ms;
    hybrid::SchedulerOptions so;
    so.max_queue = 64;
    serve::ServerOptions edge_opt;
    edge_opt.http_threads = 32;
    TestServer edge(edge_fo, so, edge_opt, &cloud, fast_policy());

    // Many clients, half of them "complex": each gets exactly one complete answer.
    constexpr int kClients = 16;
    std::vector<std::string> errors(kClients);
    std::atomic<int> n_cloud{0};
    std::vector<std::thread> ts;
    for (int i = 0; i < kClients; ++i) {
        ts.emplace_back([&, i] {
            bool hard = i % 2 == 1, stream = i % 4 < 2;
            auto r = edge.client()->Post("/v1/chat/completions",
                                         chat_body(hard ? kHard : "hello", 3, stream), kJsonType);
            if (!r || r->status != 200) {
                errors[i] = std::string(stream ? "stream " : "plain ") +
                            (r ? r->body : "no response: " + httplib::to_string(r.error()));
                return;
            }
            std::string route = r->get_header_value("X-Duan-Route");
            std::string text =
                stream
                    ? summarize(r->body).text
                    : json::parse(r->body)["choices"][0]["message"]["content"].get<std::string>();
            std::string want = route.rfind("cloud", 0) == 0 ? expected_words(2) : expected_words(3);
            if (route.rfind("cloud", 0) == 0) n_cloud++;
            if (text != want) errors[i] = "route " + route + " text '" + text + "'";
        });
    }
    for (auto& t : ts) t.join();
    for (int i = 0; i < kClients; ++i) EXPECT_EQ(errors[i], "") << i;
    EXPECT_GE(n_cloud.load(), kClients / 2);  // the complex ones at least (busy ones may overflow)
    EXPECT_EQ(cloud_server.engine->begun.load(), n_cloud.load());
}

TEST(RouterHttp, WrongCloudKeyFallsBack) {
    serve::ServerOptions cloud_opt;
    cloud_opt.api_key = "right";
    TestServer cloud_server({}, {}, cloud_opt);
    auto opts = cloud_opts("http://127.0.0.1:" + std::to_string(cloud_server.port()));
    opts.api_key = "wrong";
    serve::HttpCloudBackend cloud(opts);
    TestServer edge({}, {}, {}, &cloud, fast_policy());
    auto r = edge.client()->Post("/v1/chat/completions", chat_body(kHard, 3, false), kJsonType);
    ASSERT_TRUE(r);
    EXPECT_EQ(route_of(r), "local; reason=fallback:cloud_error");
}
