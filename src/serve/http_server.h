// The OpenAI-compatible HTTP front end: routes, API-key check, limits, SSE streaming, metrics.
// All generation goes through a hybrid::Router (which may hold only a local model, only a cloud
// endpoint, or both).
//   POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health, GET /metrics
#pragma once
#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "hybrid/metrics.h"
#include "hybrid/openai.h"
#include "hybrid/router.h"

namespace httplib {
class Server;
}

namespace duan::serve {

class ListenBacklog;

struct ServerOptions {
    std::string host = "127.0.0.1";    // loopback unless asked otherwise
    int port = 8080;                   // 0: any free port (tests)
    std::string api_key;               // "" : no authentication
    std::string model_id = "duan";     // what /v1/models lists
    size_t max_body_bytes = 8u << 20;  // larger bodies: 413
    int http_threads = 16;             // concurrent connections served
    int read_timeout_s = 30;           // a client slower than this to send its request is dropped
    int write_timeout_s = 30;
    hybrid::RequestLimits limits;
};

class HttpServer {
  public:
    HttpServer(hybrid::Router& router, hybrid::Metrics& metrics, ServerOptions opt);
    ~HttpServer();
    // Binds (throws duan::Error when it cannot) and serves on a background thread.
    void start();
    int port() const { return port_; }
    // Graceful: refuse new generations (503), wait up to `timeout_s` for those in flight, stop.
    void drain_and_stop(double timeout_s);
    void stop();
    int in_flight() const { return in_flight_.load(); }

    // For endpoints added from outside (serve/image_api.cpp), registered before start(): the
    // httplib server, the API-key check, the drain flag, and the in-flight count that
    // drain_and_stop() waits for (enter when a request starts work, leave when it is answered).
    httplib::Server& http() { return *svr_; }
    bool authorized(const std::string& auth_header) const;
    bool draining() const { return draining_.load(); }
    void enter() { in_flight_++; }
    void leave() { in_flight_--; }

  private:
    void setup();

    hybrid::Router& router_;
    hybrid::Metrics& metrics_;
    ServerOptions opt_;
    std::unique_ptr<httplib::Server> svr_;
    std::unique_ptr<ListenBacklog> backlog_;
    std::thread thread_;
    int port_ = 0;
    std::atomic<bool> draining_{false};
    std::atomic<int> in_flight_{0};
    std::atomic<bool> listen_done_{false};
};

// Constant-time string comparison (the time depends on the lengths only).
bool constant_time_equal(const std::string& a, const std::string& b);

}  // namespace duan::serve
