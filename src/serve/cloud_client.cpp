#include "serve/cloud_client.h"

#include <chrono>
#include <thread>

#include "core/error.h"
#include "hybrid/openai.h"
#include "serve/http.h"

namespace duan::serve {

using hybrid::ApiError;
using nlohmann::json;

namespace {
int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

ApiError upstream(const std::string& msg, const std::string& code = "upstream_error") {
    return ApiError(502, "upstream_error", msg, code);
}
}  // namespace

HttpCloudBackend::HttpCloudBackend(CloudOptions opt) : opt_(std::move(opt)) {
    const std::string& u = opt_.url;
    size_t scheme_end = u.find("://");
    if (scheme_end == std::string::npos ||
        (u.compare(0, scheme_end, "http") != 0 && u.compare(0, scheme_end, "https") != 0))
        fail("--cloud ", u, ": expected http://host[:port][/path] or https://...");
    size_t path_start = u.find('/', scheme_end + 3);
    origin_ = u.substr(0, path_start);
    base_path_ = path_start == std::string::npos ? "/v1" : u.substr(path_start);
    while (!base_path_.empty() && base_path_.back() == '/') base_path_.pop_back();
    if (origin_.size() <= scheme_end + 3) fail("--cloud ", u, ": no host");
}

HttpCloudBackend::~HttpCloudBackend() {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return workers_ == 0; });
}

bool HttpCloudBackend::reachable() {
    return now_ms() >= down_until_ms_.load();
}

std::shared_ptr<hybrid::GenStream> HttpCloudBackend::submit(const hybrid::GenRequest& req) {
    auto s = std::make_shared<hybrid::GenStream>();
    {
        std::lock_guard<std::mutex> lk(mu_);
        workers_++;
    }
    std::thread([this, req, s] {
        try {
            run(req, s);
        } catch (const ApiError& e) {
            s->fail(e);
        } catch (const std::exception& e) {
            s->fail(upstream(std::string("cloud client: ") + e.what()));
        }
        s->set_cancel_hook(nullptr);
        std::lock_guard<std::mutex> lk(mu_);
        workers_--;
        cv_.notify_all();
    }).detach();
    return s;
}

void HttpCloudBackend::run(hybrid::GenRequest req, std::shared_ptr<hybrid::GenStream> s) {
    // The body forwarded: the client's own fields, minus duan's, streaming with usage.
    json body = req.raw;
    for (const char* k : {"duan_private", "duan_deadline_ms"}) body.erase(k);
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
    if (!req.model.empty()) body["model"] = req.model;

    httplib::Client cli(origin_);
    cli.set_connection_timeout(
        static_cast<time_t>(opt_.connect_timeout_s),
        static_cast<time_t>((opt_.connect_timeout_s - static_cast<time_t>(opt_.connect_timeout_s)) *
                            1e6));
    cli.set_read_timeout(
        static_cast<time_t>(opt_.read_timeout_s),
        static_cast<time_t>((opt_.read_timeout_s - static_cast<time_t>(opt_.read_timeout_s)) *
                            1e6));
    cli.set_write_timeout(10, 0);
    cli.set_keep_alive(false);
    s->set_cancel_hook([&cli] { cli.stop(); });

    httplib::Request r;
    r.method = "POST";
    r.path = base_path_ + (req.chat ? "/chat/completions" : "/completions");
    r.headers = {{"Content-Type", "application/json"}, {"Accept", "text/event-stream"}};
    if (!opt_.api_key.empty()) r.headers.emplace("Authorization", "Bearer " + opt_.api_key);
    r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);

    int status = 0;
    bool sse = false;
    std::string raw;  // error bodies and non-streamed JSON answers
    size_t received = 0;
    hybrid::SseParser parser;
    hybrid::GenResult result;
    bool got_done = false, got_finish = false;
    std::optional<ApiError> err;
    int n_chunks = 0;

    r.response_handler = [&](const httplib::Response& res) {
        status = res.status;
        sse = res.get_header_value("Content-Type").find("text/event-stream") != std::string::npos;
        return true;
    };
    r.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
        if (s->cancelled()) return false;
        received += n;
        if (received > opt_.max_response_bytes) {
            err = upstream("the cloud response exceeds the size limit");
            return false;
        }
        if (status != 200 || !sse) {
            raw.append(data, n);
            return true;
        }
        try {
            for (const std::string& ev : parser.feed(std::string_view(data, n))) {
                hybrid::UpstreamChunk c = hybrid::parse_upstream_chunk(ev);
                if (c.done) {
                    got_done = true;
                    continue;
                }
                if (!c.text.empty()) {
                    n_chunks++;
                    s->push_text(std::move(c.text));
                }
                if (c.finish_reason) {
                    got_finish = true;
                    result.finish_reason = *c.finish_reason;
                }
                if (c.prompt_tokens) result.prompt_tokens = *c.prompt_tokens;
                if (c.completion_tokens) result.completion_tokens = *c.completion_tokens;
            }
        } catch (const ApiError& e) {
            err = e;
            return false;
        }
        return true;
    };

    httplib::Response res;
    httplib::Error herr = httplib::Error::Success;
    bool ok = cli.send(r, res, herr);
    s->set_cancel_hook(nullptr);  // `cli` goes away with this frame
    if (s->cancelled()) {
        s->fail(ApiError(499, "cancelled", "request cancelled", "cancelled"));
        return;
    }
    if (err) throw *err;
    if (!ok) {
        if (herr == httplib::Error::Connection || herr == httplib::Error::ConnectionTimeout) {
            down_until_ms_.store(now_ms() + static_cast<int64_t>(opt_.down_for_s * 1000));
            throw upstream("cannot connect to the cloud endpoint: " + httplib::to_string(herr),
                           "upstream_unreachable");
        }
        if (herr == httplib::Error::Read && status == 200 && sse)
            throw upstream("the cloud stream broke before it finished", "upstream_broken");
        throw upstream("cloud request failed: " + httplib::to_string(herr));
    }
    if (status != 200) {
        std::string msg = "the cloud endpoint answered HTTP " + std::to_string(status);
        json j = json::parse(raw, nullptr, false);
        if (j.is_object() && j.contains("error") && j["error"].is_object() &&
            j["error"].contains("message") && j["error"]["message"].is_string())
            msg += ": " + j["error"]["message"].get<std::string>().substr(0, 500);
        throw upstream(msg);
    }
    if (!sse) {  // a server that ignored stream=true and sent the whole answer
        json j = json::parse(raw, nullptr, false);
        if (!j.is_object() || !j.contains("choices") || !j["choices"].is_array() ||
            j["choices"].empty())
            throw upstream("malformed cloud response", "bad_upstream_stream");
        const json& c = j["choices"][0];
        std::string text;
        if (c.contains("message") && c["message"].is_object() && c["message"].contains("content") &&
            c["message"]["content"].is_string())
            text = c["message"]["content"].get<std::string>();
        else if (c.contains("text") && c["text"].is_string())
            text = c["text"].get<std::string>();
        else
            throw upstream("malformed cloud response: no text", "bad_upstream_stream");
        if (c.contains("finish_reason") && c["finish_reason"].is_string())
            result.finish_reason = c["finish_reason"].get<std::string>();
        if (j.contains("usage") && j["usage"].is_object()) {
            result.prompt_tokens = j["usage"].value("prompt_tokens", 0);
            result.completion_tokens = j["usage"].value("completion_tokens", 0);
        }
        s->push_text(std::move(text));
        s->finish(std::move(result));
        return;
    }
    // A stream must end with a finish_reason or [DONE]; anything else was cut.
    if (!got_done && !got_finish)
        throw upstream("the cloud stream ended before it finished", "upstream_broken");
    if (result.completion_tokens == 0) result.completion_tokens = n_chunks;  // no usage sent
    s->finish(std::move(result));
}

}  // namespace duan::serve
