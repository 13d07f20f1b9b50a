// The cloud side of the router: forwards a request to an OpenAI-compatible endpoint and streams
// its answer back as GenStream events. Upstream is always asked to stream (with usage), so both
// streamed and non-streamed client requests see the first token early and a break midway is
// detected. A connection failure marks the network down for down_for_s (reachable() == false).
#pragma once
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>

#include "hybrid/router.h"

namespace duan::serve {

struct CloudOptions {
    std::string url;      // "http://host:port/v1" (the /v1 prefix is assumed when no path)
    std::string api_key;  // sent as "Authorization: Bearer ..."; never logged
    double connect_timeout_s = 3;
    double read_timeout_s = 60;  // longest silence between upstream bytes
    double down_for_s = 10;      // after a connection failure
    size_t max_response_bytes = 64u << 20;
};

class HttpCloudBackend : public hybrid::CloudBackend {
  public:
    explicit HttpCloudBackend(CloudOptions opt);  // throws duan::Error for a bad URL
    ~HttpCloudBackend() override;                 // cancels nothing; waits for worker threads
    std::shared_ptr<hybrid::GenStream> submit(const hybrid::GenRequest& req) override;
    bool reachable() override;

  private:
    void run(hybrid::GenRequest req, std::shared_ptr<hybrid::GenStream> s);
    CloudOptions opt_;
    std::string origin_, base_path_;
    std::mutex mu_;
    std::condition_variable cv_;
    int workers_ = 0;
    std::atomic<int64_t> down_until_ms_{0};
};

}  // namespace duan::serve
