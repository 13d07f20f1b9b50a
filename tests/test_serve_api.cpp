// OpenAI wire format: request validation, response and chunk JSON, SSE parsing.
#include <gtest/gtest.h>

#include "hybrid/openai.h"

using namespace duan::hybrid;
using nlohmann::json;

namespace {
ApiError parse_error(const std::string& body, bool chat = true) {
    try {
        parse_request(body, chat);
    } catch (const ApiError& e) {
        return e;
    }
    ADD_FAILURE() << "no error for " << body;
    return ApiError(0, "", "");
}
}  // namespace

TEST(ServeApi, ParsesChatRequest) {
    GenRequest r = parse_request(
        R"({"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"}]}],
            "max_tokens":5,"temperature":0,"top_p":0.5,"seed":42,"stop":["a","b"],"stream":true,
            "stream_options":{"include_usage":true},"duan_private":true})",
        true);
    EXPECT_TRUE(r.chat);
    EXPECT_EQ(r.model, "m");
    ASSERT_EQ(r.messages.size(), 2u);
    EXPECT_EQ(r.messages[1].content, "hi");
    EXPECT_EQ(r.max_tokens, 5);
    EXPECT_EQ(r.temperature, 0.0f);
    EXPECT_EQ(r.top_p, 0.5f);
    EXPECT_EQ(*r.seed, 42u);
    EXPECT_EQ(r.stop.size(), 2u);
    EXPECT_TRUE(r.stream);
    EXPECT_TRUE(r.include_usage);
    EXPECT_TRUE(r.private_request);
}

TEST(ServeApi, ParsesCompletionRequest) {
    GenRequest r =
        parse_request(R"({"prompt":["Once upon"],"max_completion_tokens":3,"stop":"x"})", false);
    EXPECT_FALSE(r.chat);
    EXPECT_EQ(r.prompt, "Once upon");
    EXPECT_EQ(r.max_tokens, 3);
    EXPECT_EQ(r.stop, std::vector<std::string>{"x"});
}

TEST(ServeApi, RejectsBadInputWith400AndParam) {
    struct Case {
        const char* body;
        bool chat;
        const char* param;
    } cases[] = {
        {"{not json", true, ""},
        {"[1,2]", true, ""},
        {R"({})", true, "messages"},
        {R"({"messages":[]})", true, "messages"},
        {R"({"messages":"hi"})", true, "messages"},
        {R"({"messages":[{"role":"wizard","content":"x"}]})", true, "messages[0].role"},
        {R"({"messages":[{"content":"x"}]})", true, "messages[0].role"},
        {R"({"messages":[{"role":"user","content":5}]})", true, "messages[0].content"},
        {R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})", true,
         "messages[0].content"},
        {R"({"messages":[{"role":"user","content":"x"}],"max_tokens":0})", true, "max_tokens"},
        {R"({"messages":[{"role":"user","content":"x"}],"max_tokens":"5"})", true, "max_tokens"},
        {R"({"messages":[{"role":"user","content":"x"}],"temperature":3})", true, "temperature"},
        {R"({"messages":[{"role":"user","content":"x"}],"top_p":"a"})", true, "top_p"},
        {R"({"messages":[{"role":"user","content":"x"}],"n":2})", true, "n"},
        {R"({"messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]})", true,
         "stop"},
        {R"({"messages":[{"role":"user","content":"x"}],"stop":[1]})", true, "stop"},
        {R"({"messages":[{"role":"user","content":"x"}],"stop":""})", true, "stop"},
        {R"({"messages":[{"role":"user","content":"x"}],"stream":"yes"})", true, "stream"},
        {R"({"messages":[{"role":"user","content":"x"}],"seed":1.5})", true, "seed"},
        {R"({"messages":[{"role":"user","content":"x"}],"model":7})", true, "model"},
        {R"({"prompt":5})", false, "prompt"},
        {R"({"prompt":["a","b"]})", false, "prompt"},
    };
    for (const auto& c : cases) {
        ApiError e = parse_error(c.body, c.chat);
        EXPECT_EQ(e.status, 400) << c.body;
        EXPECT_EQ(e.type, "invalid_request_error") << c.body;
        EXPECT_EQ(e.param, c.param) << c.body;
    }
}

TEST(ServeApi, TextLimit) {
    RequestLimits lim;
    lim.max_text_bytes = 10;
    EXPECT_THROW(parse_request(R"({"prompt":"01234567890"})", false, lim), ApiError);
    EXPECT_NO_THROW(parse_request(R"({"prompt":"0123456789"})", false, lim));
}

TEST(ServeApi, ErrorJsonShape) {
    ApiError e(400, "invalid_request_error", "bad \"x\"", "", "max_tokens");
    json j = json::parse(error_json(e));
    EXPECT_EQ(j["error"]["message"], "bad \"x\"");
    EXPECT_EQ(j["error"]["type"], "invalid_request_error");
    EXPECT_EQ(j["error"]["param"], "max_tokens");
    EXPECT_TRUE(j["error"]["code"].is_null());
}

TEST(ServeApi, ResponseAndChunks) {
    GenRequest req = parse_request(
        R"({"messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}})",
        true);
    GenResult r{"hello", "length", 3, 2};
    json j = response_json(req, "chatcmpl-1", 7, "m", r);
    EXPECT_EQ(j["object"], "chat.completion");
    EXPECT_EQ(j["choices"][0]["message"]["content"], "hello");
    EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(j["usage"]["total_tokens"], 5);

    ChunkWriter w(req, "chatcmpl-1", 7, "m");
    std::string first = w.first();
    ASSERT_EQ(first.rfind("data: ", 0), 0u);
    json f = json::parse(first.substr(6));
    EXPECT_EQ(f["object"], "chat.completion.chunk");
    EXPECT_EQ(f["choices"][0]["delta"]["role"], "assistant");
    EXPECT_TRUE(f["usage"].is_null());
    json t = json::parse(w.text("he").substr(6));
    EXPECT_EQ(t["choices"][0]["delta"]["content"], "he");
    EXPECT_TRUE(t["choices"][0]["finish_reason"].is_null());
    EXPECT_EQ(w.text(""), "");
    std::string fin = w.finish(r);
    SseParser p;
    auto evs = p.feed(fin);
    ASSERT_EQ(evs.size(), 3u);
    EXPECT_EQ(json::parse(evs[0])["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(json::parse(evs[1])["usage"]["completion_tokens"], 2);
    EXPECT_TRUE(json::parse(evs[1])["choices"].empty());
    EXPECT_EQ(evs[2], "[DONE]");

    GenRequest creq = parse_request(R"({"prompt":"x"})", false);
    ChunkWriter cw(creq, "cmpl-1", 7, "m");
    EXPECT_EQ(cw.first(), "");
    EXPECT_EQ(json::parse(cw.text("ab").substr(6))["choices"][0]["text"], "ab");
    EXPECT_EQ(json::parse(cw.text("ab").substr(6))["object"], "text_completion");
}

TEST(ServeApi, SseParserSplitsAnywhere) {
    std::string s =
        ": comment\r\ndata: {\"a\":1}\r\n\r\nevent: x\ndata: l1\ndata: l2\n\ndata: [DONE]\n\n";
    for (size_t cut = 0; cut <= s.size(); ++cut) {
        SseParser p;
        auto a = p.feed(s.substr(0, cut));
        auto b = p.feed(s.substr(cut));
        a.insert(a.end(), b.begin(), b.end());
        ASSERT_EQ(a.size(), 3u) << cut;
        EXPECT_EQ(a[0], "{\"a\":1}");
        EXPECT_EQ(a[1], "l1\nl2");
        EXPECT_EQ(a[2], "[DONE]");
    }
    SseParser small(16);
    EXPECT_THROW(small.feed(std::string(100, 'x')), ApiError);
}

TEST(ServeApi, UpstreamChunks) {
    auto c =
        parse_upstream_chunk(R"({"choices":[{"delta":{"content":"hi"},"finish_reason":null}]})");
    EXPECT_EQ(c.text, "hi");
    EXPECT_FALSE(c.finish_reason);
    c = parse_upstream_chunk(R"({"choices":[{"text":"yo","finish_reason":"stop"}]})");
    EXPECT_EQ(c.text, "yo");
    EXPECT_EQ(*c.finish_reason, "stop");
    c = parse_upstream_chunk(R"({"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":9}})");
    EXPECT_EQ(*c.completion_tokens, 9);
    EXPECT_TRUE(parse_upstream_chunk("[DONE]").done);
    for (const char* bad : {"{oops", "[]", R"({"x":1})", R"({"choices":[{"delta":{"content":3}}]})",
                            R"({"error":{"message":"overloaded"}})", R"({"choices":[5]})"}) {
        EXPECT_THROW(parse_upstream_chunk(bad), ApiError) << bad;
    }
}
