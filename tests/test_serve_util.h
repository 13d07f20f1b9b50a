// Helpers for the HTTP tests: an in-process duan server on a loopback port (fake engine), and a
// tiny SSE reader for responses.
#pragma once
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "hybrid/fake_engine.h"
#include "hybrid/openai.h"
#include "hybrid/router.h"
#include "serve/http.h"
#include "serve/http_server.h"

namespace duan::test {

struct TestServer {
    hybrid::Metrics metrics;
    hybrid::FakeEngine* engine = nullptr;
    std::unique_ptr<hybrid::Scheduler> local;
    std::unique_ptr<hybrid::Router> router;
    std::unique_ptr<serve::HttpServer> server;

    // cloud may be null. policy.cloud_first_token_timeout_ms is what the fallback tests wait.
    TestServer(hybrid::FakeEngineOptions fo = {}, hybrid::SchedulerOptions so = {},
               serve::ServerOptions opt = {}, hybrid::CloudBackend* cloud = nullptr,
               hybrid::Policy policy = {}) {
        auto e = std::make_unique<hybrid::FakeEngine>(fo);
        engine = e.get();
        local = std::make_unique<hybrid::Scheduler>(std::move(e), so);
        router = std::make_unique<hybrid::Router>(local.get(), cloud, std::move(policy), nullptr,
                                                  &metrics);
        opt.port = 0;
        opt.model_id = fo.model_id;
        server = std::make_unique<serve::HttpServer>(*router, metrics, opt);
        server->start();
    }
    ~TestServer() {
        server->stop();
        local->shutdown(false);
    }
    int port() const { return server->port(); }
    std::unique_ptr<httplib::Client> client() const {
        auto c = std::make_unique<httplib::Client>("127.0.0.1", port());
        c->set_read_timeout(20, 0);
        return c;
    }
};

inline std::string expected_words(int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += hybrid::FakeEngine::word(i);
    return s;
}

// The data payloads of an SSE body.
inline std::vector<std::string> sse_events(const std::string& body) {
    hybrid::SseParser p;
    return p.feed(body);
}

// Concatenated delta/text content of a streamed body; error text if an error event came.
struct StreamSummary {
    std::string text, finish_reason, error_code;
    bool done = false, role_first = false;
    int events = 0;
    nlohmann::json usage;
};

inline StreamSummary summarize(const std::string& body) {
    StreamSummary s;
    auto evs = sse_events(body);
    for (size_t i = 0; i < evs.size(); ++i) {
        s.events++;
        if (evs[i] == "[DONE]") {
            s.done = true;
            EXPECT_EQ(i + 1, evs.size()) << "[DONE] must be last";
            continue;
        }
        auto j = nlohmann::json::parse(evs[i]);
        if (j.contains("error")) {
            s.error_code =
                j["error"]["code"].is_string() ? j["error"]["code"].get<std::string>() : "?";
            continue;
        }
        if (j.contains("usage") && j["usage"].is_object()) s.usage = j["usage"];
        if (j["choices"].empty()) continue;
        const auto& c = j["choices"][0];
        if (c.contains("delta")) {
            if (i == 0 && c["delta"].contains("role")) s.role_first = true;
            if (c["delta"].contains("content")) s.text += c["delta"]["content"].get<std::string>();
        } else if (c.contains("text")) {
            s.text += c["text"].get<std::string>();
        }
        if (!c["finish_reason"].is_null()) s.finish_reason = c["finish_reason"];
    }
    return s;
}

inline std::string chat_body(const std::string& text, int max_tokens, bool stream,
                             const std::string& extra = "") {
    nlohmann::json j = {{"model", "m"},
                        {"messages", {{{"role", "user"}, {"content", text}}}},
                        {"max_tokens", max_tokens},
                        {"stream", stream}};
    std::string s = j.dump();
    if (!extra.empty()) s = s.substr(0, s.size() - 1) + "," + extra + "}";
    return s;
}

}  // namespace duan::test
