// The HTTP server on loopback with the fake engine: OpenAI responses and SSE, errors and their
// status codes, limits, back-pressure, many concurrent clients, disconnects, drain.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "test_serve_util.h"
#include "wait_until.h"

using namespace duan;
using namespace duan::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {
const char* kJsonType = "application/json";

void expect_openai_error(const httplib::Result& r, int status, const std::string& code = "") {
    ASSERT_TRUE(r) << "no response";
    EXPECT_EQ(r->status, status) << r->body;
    json j = json::parse(r->body, nullptr, false);
    ASSERT_TRUE(j.is_object() && j.contains("error")) << r->body;
    EXPECT_TRUE(j["error"]["message"].is_string());
    EXPECT_TRUE(j["error"]["type"].is_string());
    if (!code.empty()) {
        EXPECT_EQ(j["error"]["code"], code) << r->body;
    }
}
}  // namespace

TEST(ServeHttp, HealthModelsMetrics) {
    TestServer s;
    auto c = s.client();
    auto r = c->Get("/health");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    r = c->Get("/v1/models");
    ASSERT_TRUE(r);
    EXPECT_EQ(json::parse(r->body)["data"][0]["id"], "fake");
    c->Post("/v1/chat/completions", chat_body("hi", 2, false), kJsonType);
    r = c->Get("/metrics");
    ASSERT_TRUE(r);
    EXPECT_NE(
        r->body.find("duan_requests_total{endpoint=\"chat\",status=\"200\",route=\"local\"} 1"),
        std::string::npos)
        << r->body;
    EXPECT_NE(r->body.find("duan_request_duration_seconds_bucket"), std::string::npos);
    EXPECT_NE(r->body.find("duan_tokens_total{route=\"local\",kind=\"completion\"} 2"),
              std::string::npos)
        << r->body;
}

TEST(ServeHttp, ChatNonStreamed) {
    TestServer s;
    auto r =
        s.client()->Post("/v1/chat/completions", chat_body("hello there", 4, false), kJsonType);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(r->get_header_value("X-Duan-Route"), "local; reason=no_cloud");
    json j = json::parse(r->body);
    EXPECT_EQ(j["object"], "chat.completion");
    EXPECT_EQ(j["model"], "m");
    EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
    EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
    EXPECT_EQ(j["choices"][0]["message"]["content"], expected_words(4));
    EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(j["usage"]["completion_tokens"], 4);
    EXPECT_EQ(j["usage"]["total_tokens"], j["usage"]["prompt_tokens"].get<int>() + 4);
}

TEST(ServeHttp, ChatStreamedExactlyAsOpenAI) {
    TestServer s;
    auto r = s.client()->Post(
        "/v1/chat/completions",
        chat_body("hello", 5, true, R"("stream_options":{"include_usage":true},"stop":["brown"])"),
        kJsonType);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200);
    EXPECT_NE(r->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
    auto sum = summarize(r->body);
    EXPECT_TRUE(sum.role_first);
    EXPECT_TRUE(sum.done);
    EXPECT_EQ(sum.text, " the quick ");
    EXPECT_EQ(sum.finish_reason, "stop");
    EXPECT_EQ(sum.usage["completion_tokens"], 3);
    // Every event is "data: ...\n\n" and the body ends with [DONE].
    EXPECT_EQ(r->body.substr(r->body.size() - 14), "data: [DONE]\n\n");
}

TEST(ServeHttp, Completions) {
    TestServer s;
    auto c = s.client();
    auto r =
        c->Post("/v1/completions", R"({"prompt":"Once upon a time","max_tokens":3})", kJsonType);
    ASSERT_TRUE(r);
    json j = json::parse(r->body);
    EXPECT_EQ(j["object"], "text_completion");
    EXPECT_EQ(j["choices"][0]["text"], expected_words(3));
    EXPECT_EQ(j["usage"]["prompt_tokens"], 5);
    r = c->Post("/v1/completions", R"({"prompt":"x","max_tokens":3,"stream":true})", kJsonType);
    ASSERT_TRUE(r);
    auto sum = summarize(r->body);
    EXPECT_EQ(sum.text, expected_words(3));
    EXPECT_EQ(sum.finish_reason, "length");
    EXPECT_TRUE(sum.done);
}

TEST(ServeHttp, ErrorsHaveStatusAndOpenAIBody) {
    serve::ServerOptions opt;
    opt.max_body_bytes = 4096;
    hybrid::FakeEngineOptions fo;
    fo.n_ctx = 64;
    TestServer s(fo, {}, opt);
    auto c = s.client();
    expect_openai_error(c->Post("/v1/chat/completions", "{oops", kJsonType), 400);
    expect_openai_error(
        c->Post("/v1/chat/completions",
                R"({"messages":[{"role":"user","content":"x"}],"max_tokens":-1})", kJsonType),
        400);
    expect_openai_error(c->Post("/v1/chat/completions", "", kJsonType), 400);
    expect_openai_error(c->Post("/v1/completions", R"({"prompt":null})", kJsonType), 400);
    expect_openai_error(c->Get("/v1/nothing"), 404);
    expect_openai_error(c->Get("/../../etc/passwd"), 404);
    expect_openai_error(c->Post("/v1/chat/completions", std::string(5000, ' '), kJsonType), 413);
    std::string long_prompt;
    for (int i = 0; i < 100; ++i) long_prompt += "w ";
    expect_openai_error(
        c->Post("/v1/chat/completions", chat_body(long_prompt, 5, false), kJsonType), 400,
        "context_length_exceeded");
    // Binary garbage and deep nesting are 400s, not crashes.
    expect_openai_error(c->Post("/v1/chat/completions", std::string("\x00\xff\xfe", 3), kJsonType),
                        400);
    expect_openai_error(c->Post("/v1/chat/completions", std::string(1000, '['), kJsonType), 400);
    // Still healthy.
    auto r = c->Post("/v1/chat/completions", chat_body("ok", 2, false), kJsonType);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
}

TEST(ServeHttp, ApiKey) {
    serve::ServerOptions opt;
    opt.api_key = "sekret";
    TestServer s({}, {}, opt);
    auto c = s.client();
    expect_openai_error(c->Post("/v1/chat/completions", chat_body("x", 2, false), kJsonType), 401,
                        "invalid_api_key");
    c->set_bearer_token_auth("wrong!");
    expect_openai_error(c->Post("/v1/chat/completions", chat_body("x", 2, false), kJsonType), 401);
    expect_openai_error(c->Get("/metrics"), 401);
    c->set_bearer_token_auth("sekret");
    auto r = c->Post("/v1/chat/completions", chat_body("x", 2, false), kJsonType);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(s.client()->Get("/health")->status, 200);  // health needs no key
    EXPECT_TRUE(serve::constant_time_equal("abc", "abc"));
    EXPECT_FALSE(serve::constant_time_equal("abc", "abd"));
    EXPECT_FALSE(serve::constant_time_equal("abc", "abcd"));
    EXPECT_FALSE(serve::constant_time_equal("", "a"));
}

TEST(ServeHttp, QueueFullGives429WithRetryAfter) {
    hybrid::FakeEngineOptions fo;
    fo.n_slots = 1;
    fo.step_delay = 10ms;
    hybrid::SchedulerOptions so;
    so.max_queue = 1;
    TestServer s(fo, so);
    std::thread a(
        [&] { s.client()->Post("/v1/chat/completions", chat_body("a", 100, false), kJsonType); });
    // Wait on state, not on the clock: under qemu a fixed 60 ms is not enough for a to be in the
    // slot.
    test::wait_until([&] { return s.engine->begun.load() >= 1; }, 5s);
    std::thread b(
        [&] { s.client()->Post("/v1/chat/completions", chat_body("b", 2, false), kJsonType); });
    test::wait_until([&] { return s.server->in_flight() >= 2; }, 5s);
    auto r = s.client()->Post("/v1/chat/completions", chat_body("c", 2, false), kJsonType);
    expect_openai_error(r, 429, "queue_full");
    EXPECT_EQ(r->get_header_value("Retry-After"), "1");
    // The same for a streamed request: refused before any event is sent.
    r = s.client()->Post("/v1/chat/completions", chat_body("d", 2, true), kJsonType);
    expect_openai_error(r, 429, "queue_full");
    EXPECT_EQ(s.server->in_flight(), 2);
    a.join();
    b.join();
}

TEST(ServeHttp, ManyConcurrentClientsEachGetOneCompleteAnswer) {
    hybrid::FakeEngineOptions fo;
    fo.n_slots = 4;
    fo.step_delay = 1ms;
    hybrid::SchedulerOptions so;
    so.max_queue = 64;
    serve::ServerOptions opt;
    opt.http_threads = 40;
    TestServer s(fo, so, opt);
    constexpr int kClients = 32;
    std::atomic<int> ok{0};
    std::vector<std::thread> ts;
    std::vector<std::string> errors(kClients);
    for (int i = 0; i < kClients; ++i) {
        ts.emplace_back([&, i] {
            const int n = 2 + i % 7;
            const bool stream = i % 2 == 0;
            auto r =
                s.client()->Post("/v1/chat/completions",
                                 chat_body("client " + std::to_string(i), n, stream), kJsonType);
            if (!r || r->status != 200) {
                errors[i] = (stream ? "stream " : "plain ") +
                            (r ? r->body : "no response: " + httplib::to_string(r.error()));
                return;
            }
            std::string text =
                stream
                    ? summarize(r->body).text
                    : json::parse(r->body)["choices"][0]["message"]["content"].get<std::string>();
            if (text == expected_words(n))
                ok++;
            else
                errors[i] = "wrong text: " + text;
        });
    }
    for (auto& t : ts) t.join();
    for (int i = 0; i < kClients; ++i) EXPECT_EQ(errors[i], "") << i;
    EXPECT_EQ(ok.load(), kClients);
    EXPECT_GT(s.local->stats().max_batch_seqs, 1);  // sequences were decoded together
    EXPECT_EQ(s.engine->begun.load(), kClients);
}

TEST(ServeHttp, ClientDisconnectCancelsItsSequence) {
    hybrid::FakeEngineOptions fo;
    fo.n_slots = 1;
    fo.step_delay = 5ms;
    TestServer s(fo);
    httplib::Client c("127.0.0.1", s.port());
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/chat/completions";
    req.headers = {{"Content-Type", kJsonType}};
    req.body = chat_body("forever", 1000000 / 1000, true);
    int chunks = 0;
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 3; };
    httplib::Response res;
    httplib::Error err;
    c.send(req, res, err);  // returns false: we hung up after 3 chunks
    // The slot is freed long before the 1000 tokens would have been generated (5 s).
    test::wait_until([&] { return s.engine->ended.load() >= 1; }, 10s);
    EXPECT_EQ(s.engine->ended.load(), 1);
    EXPECT_LT(s.local->stats().tokens_generated, 500u);
    auto r = s.client()->Post("/v1/chat/completions", chat_body("next", 2, false), kJsonType);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
}

TEST(ServeHttp, ClientDisconnectCancelsNonStreamedRequest) {
    hybrid::FakeEngineOptions fo;
    fo.n_slots = 1;
    fo.step_delay = 5ms;
    TestServer s(fo);
    httplib::Client c("127.0.0.1", s.port());
    c.set_read_timeout(0, 200000);  // hang up after 200 ms, long before the answer is ready
    auto gone = c.Post("/v1/chat/completions", chat_body("forever", 1000, false), kJsonType);
    EXPECT_FALSE(gone);
    // The server notices within its 200 ms poll and frees the slot; 1000 tokens would take 5 s.
    test::wait_until([&] { return s.engine->ended.load() >= 1; }, 10s);
    EXPECT_EQ(s.engine->ended.load(), 1);
    EXPECT_LT(s.local->stats().tokens_generated, 500u);
    auto r = s.client()->Post("/v1/chat/completions", chat_body("next", 2, false), kJsonType);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
}

TEST(ServeHttp, DrainFinishesInFlightAndRefusesNew) {
    hybrid::FakeEngineOptions fo;
    fo.step_delay = 5ms;
    TestServer s(fo);
    int status = 0;
    std::string body;
    std::thread a([&] {
        auto r = s.client()->Post("/v1/chat/completions", chat_body("a", 30, false), kJsonType);
        if (r) status = r->status, body = r->body;
    });
    // Drain only once the request is in flight: a fixed sleep raced under qemu (CI stop 9), where
    // the request had not reached the engine 50 ms later and was refused by the drain instead.
    test::wait_until([&] { return s.engine->begun.load() >= 1; }, 5s);
    EXPECT_EQ(s.engine->begun.load(), 1);
    std::thread d([&] { s.server->drain_and_stop(10); });
    test::wait_until([&] { return s.server->draining(); }, 1s);
    auto r = s.client()->Post("/v1/chat/completions", chat_body("late", 2, false), kJsonType);
    if (r) {
        EXPECT_EQ(r->status, 503);  // or the listener is already closed
    }
    a.join();
    d.join();
    ASSERT_EQ(status, 200);
    EXPECT_EQ(json::parse(body)["choices"][0]["message"]["content"], expected_words(30));
}
