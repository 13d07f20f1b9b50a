#include "serve/http_server.h"

#include <chrono>
#include <ctime>

#include "core/error.h"
#include "serve/connection.h"
#include "serve/http.h"

namespace duan::serve {

using hybrid::ApiError;
using hybrid::GenRequest;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

bool constant_time_equal(const std::string& a, const std::string& b) {
    // Always walk the longer length so the comparison time reveals nothing but the lengths.
    size_t n = std::max(a.size(), b.size());
    unsigned char diff = a.size() == b.size() ? 0 : 1;
    for (size_t i = 0; i < n; ++i) {
        unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
        unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
        diff |= static_cast<unsigned char>(x ^ y);
    }
    return diff == 0;
}

namespace {

const char* kJson = "application/json; charset=utf-8";

void send_error(httplib::Response& res, const ApiError& e) {
    res.status = e.status;
    if (e.retry_after_s > 0) res.set_header("Retry-After", std::to_string(e.retry_after_s));
    res.set_content(hybrid::error_json(e), kJson);
}

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

bool truthy(const std::string& v) {
    return v == "1" || v == "true" || v == "yes";
}

// Everything a streamed response needs after the handler returned.
struct StreamState {
    GenRequest req;
    hybrid::Router::Routed routed;
    std::unique_ptr<hybrid::ChunkWriter> writer;
    Clock::time_point t0;
    Clock::time_point deadline;
    std::atomic<int>* in_flight = nullptr;
    hybrid::Metrics* metrics = nullptr;
    std::string endpoint;
    bool finished = false;
    ~StreamState() {
        if (!finished && routed.stream) routed.stream->cancel();  // client gone: free the slot
        if (in_flight) in_flight->fetch_sub(1);
    }
};

}  // namespace

HttpServer::HttpServer(hybrid::Router& router, hybrid::Metrics& metrics, ServerOptions opt)
    : router_(router),
      metrics_(metrics),
      opt_(std::move(opt)),
      svr_(std::make_unique<httplib::Server>()) {
    metrics_.describe("duan_requests_total", "counter",
                      "HTTP requests by endpoint, status and route");
    metrics_.describe_histogram(
        "duan_request_duration_seconds", "Request latency, end to end",
        {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120});
    metrics_.describe_histogram("duan_time_to_first_token_seconds", "Streamed requests: first text",
                                {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30});
    metrics_.describe("duan_in_flight_requests", "gauge", "Generation requests being served");
    metrics_.on_render(
        [this](hybrid::Metrics& m) { m.set("duan_in_flight_requests", {}, in_flight_.load()); });
    setup();
}

HttpServer::~HttpServer() {
    stop();
}

bool HttpServer::authorized(const std::string& auth) const {
    if (opt_.api_key.empty()) return true;
    const std::string prefix = "Bearer ";
    if (auth.size() < prefix.size() || auth.compare(0, prefix.size(), prefix) != 0) return false;
    return constant_time_equal(auth.substr(prefix.size()), opt_.api_key);
}

void HttpServer::setup() {
    httplib::Server& s = *svr_;
    backlog_ = std::make_unique<ListenBacklog>(s);
    s.set_payload_max_length(opt_.max_body_bytes);
    s.set_read_timeout(opt_.read_timeout_s, 0);
    s.set_write_timeout(opt_.write_timeout_s, 0);
    s.set_keep_alive_timeout(2);
    const int nthreads = std::max(2, opt_.http_threads);
    s.new_task_queue = [nthreads] {
        return new httplib::ThreadPool(static_cast<size_t>(nthreads));
    };

    // Errors httplib produces itself (404, 413, 400 bad request line) get OpenAI's error body.
    s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return;
        std::string msg = res.status == 404
                              ? "unknown endpoint: " + req.method + " " + req.path.substr(0, 200)
                          : res.status == 413 ? "the request body is too large"
                                              : "bad request";
        std::string type = res.status >= 500 ? "server_error" : "invalid_request_error";
        res.set_content(hybrid::error_json(ApiError(res.status, type, msg)), kJson);
    });
    s.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
            std::string what = "internal error";
            try {
                if (ep) std::rethrow_exception(ep);
            } catch (const std::exception& e) {
                what += std::string(": ") + e.what();
            } catch (...) {
            }
            send_error(res, ApiError(500, "server_error", what));
        });

    s.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
        if (draining_) {
            res.status = 503;
            res.set_content(R"({"status":"draining"})", kJson);
        } else {
            res.set_content(R"({"status":"ok"})", kJson);
        }
    });
    s.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
        if (!authorized(req.get_header_value("Authorization")))
            return send_error(
                res, ApiError(401, "invalid_request_error", "invalid API key", "invalid_api_key"));
        res.set_content(metrics_.render(), "text/plain; version=0.0.4; charset=utf-8");
    });
    s.Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
        if (!authorized(req.get_header_value("Authorization")))
            return send_error(
                res, ApiError(401, "invalid_request_error", "invalid API key", "invalid_api_key"));
        json m = {{"id", opt_.model_id},
                  {"object", "model"},
                  {"created", static_cast<int64_t>(std::time(nullptr))},
                  {"owned_by", "duan"}};
        res.set_content(json{{"object", "list"}, {"data", json::array({m})}}.dump(), kJson);
    });

    auto generate = [this](bool chat) {
        return [this, chat](const httplib::Request& req, httplib::Response& res) {
            const auto t0 = Clock::now();
            const std::string endpoint = chat ? "chat" : "completions";
            std::string route = "none";
            auto record = [&](int status) {
                metrics_.inc(
                    "duan_requests_total",
                    {{"endpoint", endpoint}, {"status", std::to_string(status)}, {"route", route}});
                metrics_.observe("duan_request_duration_seconds",
                                 {{"endpoint", endpoint}, {"route", route}}, seconds_since(t0));
            };
            if (!authorized(req.get_header_value("Authorization"))) {
                send_error(res, ApiError(401, "invalid_request_error", "invalid API key",
                                         "invalid_api_key"));
                return record(401);
            }
            if (draining_) {
                send_error(res, ApiError(503, "server_error", "the server is shutting down",
                                         "shutting_down"));
                return record(503);
            }
            in_flight_++;
            bool handed_over = false;  // the stream state owns the in-flight count now
            try {
                GenRequest g = hybrid::parse_request(req.body, chat, opt_.limits);
                if (truthy(req.get_header_value("X-Duan-Private"))) g.private_request = true;
                const std::string model = g.model.empty() ? opt_.model_id : g.model;
                const std::string id = hybrid::make_id(chat);
                const int64_t created = static_cast<int64_t>(std::time(nullptr));
                if (!g.stream) {
                    // A client that hangs up cancels its generation (and frees its slot).
                    const int fd = find_connection_socket(req.local_addr, req.local_port,
                                                          req.remote_addr, req.remote_port);
                    auto gone = [fd] { return fd >= 0 && peer_closed(fd); };
                    hybrid::Router::Completed c = router_.complete(g, gone);
                    route = c.route.cloud ? "cloud" : "local";
                    res.set_header("X-Duan-Route", c.route.header());
                    res.set_content(hybrid::response_json(g, id, created, model, c.result)
                                        .dump(-1, ' ', false, json::error_handler_t::replace),
                                    kJson);
                    in_flight_--;
                    return record(200);
                }
                auto st = std::make_shared<StreamState>();
                st->in_flight = &in_flight_;  // from here on ~StreamState gives the count back
                handed_over = true;
                st->req = std::move(g);
                st->routed = router_.start(st->req);
                route = st->routed.route.cloud ? "cloud" : "local";
                st->writer = std::make_unique<hybrid::ChunkWriter>(st->req, id, created, model);
                st->t0 = t0;
                st->deadline = t0 + std::chrono::milliseconds(
                                        static_cast<int64_t>(router_.policy().request_timeout_ms));
                st->metrics = &metrics_;
                st->endpoint = endpoint;
                res.set_header("X-Duan-Route", st->routed.route.header());
                res.set_header("Cache-Control", "no-cache");
                res.set_header("X-Accel-Buffering", "no");
                // Counted now; its duration is observed when the stream ends.
                metrics_.inc("duan_requests_total",
                             {{"endpoint", endpoint}, {"status", "200"}, {"route", route}});
                res.set_chunked_content_provider(
                    "text/event-stream", [this, st](size_t, httplib::DataSink& sink) {
                        auto write = [&](const std::string& s) {
                            return s.empty() || sink.write(s.data(), s.size());
                        };
                        if (!write(st->writer->first())) return false;
                        bool first_text = true;
                        const std::string where = st->routed.route.cloud ? "cloud" : "local";
                        struct Observe {  // the stream's whole duration, however it ends
                            StreamState& st;
                            const std::string& where;
                            ~Observe() {
                                st.metrics->observe("duan_request_duration_seconds",
                                                    {{"endpoint", st.endpoint}, {"route", where}},
                                                    seconds_since(st.t0));
                            }
                        } observe{*st, where};
                        for (;;) {
                            auto ev = st->routed.stream->next(std::chrono::milliseconds(200));
                            if (!ev) {
                                if (!sink.is_writable())
                                    return false;  // client gone: ~StreamState cancels
                                if (Clock::now() > st->deadline) {
                                    st->routed.stream->cancel();
                                    write(hybrid::ChunkWriter::error(
                                        ApiError(504, "server_error", "the generation timed out",
                                                 "timeout")));
                                    st->finished = true;
                                    sink.done();
                                    return true;
                                }
                                continue;
                            }
                            if (ev->kind == hybrid::StreamEvent::Text) {
                                if (first_text) {
                                    metrics_.observe("duan_time_to_first_token_seconds",
                                                     {{"route", where}}, seconds_since(st->t0));
                                    first_text = false;
                                }
                                if (!write(st->writer->text(ev->text))) return false;
                            } else if (ev->kind == hybrid::StreamEvent::Done) {
                                router_.account(st->routed.route, ev->result);
                                st->finished = true;
                                write(st->writer->finish(ev->result));
                                sink.done();
                                return true;
                            } else {
                                // Broke midway (text may have been sent): say so, never retry.
                                st->finished = true;
                                metrics_.inc("duan_stream_errors_total",
                                             {{"route", where}, {"code", ev->error->code}});
                                write(hybrid::ChunkWriter::error(*ev->error));
                                sink.done();
                                return true;
                            }
                        }
                    });
            } catch (const ApiError& e) {
                if (!handed_over) in_flight_--;
                send_error(res, e);
                return record(e.status);
            } catch (const Error& e) {  // e.g. a chat template the model cannot render
                if (!handed_over) in_flight_--;
                send_error(res, ApiError(400, "invalid_request_error", e.what()));
                return record(400);
            } catch (...) {  // the exception handler answers 500; keep the count right
                if (!handed_over) in_flight_--;
                throw;
            }
        };
    };
    s.Post("/v1/chat/completions", generate(true));
    s.Post("/v1/completions", generate(false));
}

void HttpServer::start() {
    if (opt_.port == 0) {
        port_ = svr_->bind_to_any_port(opt_.host);
        if (port_ <= 0) fail("serve: cannot bind ", opt_.host, " (any port)");
    } else {
        if (!svr_->bind_to_port(opt_.host, opt_.port))
            fail("serve: cannot bind ", opt_.host, ":", opt_.port);
        port_ = opt_.port;
    }
    backlog_->relisten();
    listen_done_ = false;
    thread_ = std::thread([this] {
        svr_->listen_after_bind();
        listen_done_ = true;
    });
    // stop() before the loop runs would be lost; wait until it does.
    while (!svr_->is_running() && !listen_done_)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void HttpServer::drain_and_stop(double timeout_s) {
    draining_ = true;
    auto until = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
    while (in_flight_.load() > 0 && Clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    stop();
}

void HttpServer::stop() {
    draining_ = true;
    if (svr_) svr_->stop();
    if (thread_.joinable()) thread_.join();
}

}  // namespace duan::serve
