// An image generation stops when its client hangs up: the running one at its next UNet
// evaluation, a queued one before it starts; both are counted in /metrics and the server answers
// the next request. On loopback with the tiny SD1 checkpoint and raw sockets (closed mid-request).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "sd_fixture.h"
#include "serve_image_util.h"
#include "wait_until.h"

using namespace duan;
using namespace std::chrono_literals;

namespace {

// Sends a POST with `body` on a fresh connection and returns the socket (the answer is never read).
int send_request(int port, const std::string& path, const std::string& body) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return -1;
    const std::string req = "POST " + path +
                            " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                            "Content-Length: " +
                            std::to_string(body.size()) + "\r\n\r\n" + body;
    if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
        close(fd);
        return -1;
    }
    return fd;
}

}  // namespace

TEST(ServeImagesCancel, ClientDisconnectStopsTheGeneration) {
    DUAN_REQUIRE_TESTDATA("sd/clip/merges.txt");
    DUAN_REQUIRE_SD_CHECKPOINT(dir);
    const int total = 400;
    test::ImageServer s(test::tiny_sd1_path(dir), "tiny_sd1_s0_f32", "", total);
    const std::string body =
        R"({"prompt":"a red ball","size":"64x64","seed":1,"steps":)" + std::to_string(total) + "}";
    const hybrid::Labels images = {{"endpoint", "images"}};
    auto cancelled = [&] { return s.metrics.value("duan_images_cancelled_total", images); };
    // The handler counts a cancellation in three metrics, the request status (499) last: waiting
    // on that one means all three are in (waiting on the first raced the other two, CI stop 9).
    auto answered_499 = [&] {
        return s.metrics.value("duan_requests_total",
                               {{"endpoint", "images"}, {"status", "499"}, {"route", "local"}});
    };

    // A: runs. B: waits for the model behind A.
    const int a = send_request(s.server->port(), "/v1/images/generations", body);
    ASSERT_GE(a, 0);
    ASSERT_TRUE(test::wait_until([&] { return s.images->steps_run() >= 1; }, 120s));
    const int b = send_request(s.server->port(), "/v1/images/generations", body);
    ASSERT_GE(b, 0);
    ASSERT_TRUE(test::wait_until([&] { return s.images->waiting() == 2; }, 10s));

    // B hangs up while queued: dropped before it costs a step (within the 100 ms poll); A runs on.
    close(b);
    ASSERT_TRUE(test::wait_until([&] { return answered_499() == 1; }, 10s));
    EXPECT_EQ(cancelled(), 1);
    EXPECT_TRUE(s.images->busy());
    EXPECT_EQ(s.images->waiting(), 1);

    // A hangs up: it stops at its next UNet evaluation, long before its `total` steps.
    const int64_t at_close = s.images->steps_run();
    close(a);
    ASSERT_TRUE(test::wait_until([&] { return answered_499() == 2 && !s.images->busy(); }, 60s));
    EXPECT_EQ(cancelled(), 2);
    const int64_t run = s.images->steps_run();
    std::printf("[cancel] %lld of %d steps run, %lld after the client closed\n",
                static_cast<long long>(run), total, static_cast<long long>(run - at_close));
    EXPECT_LT(run, total);
    EXPECT_LE(run - at_close, 2);  // the step under way, and at most one more
    EXPECT_EQ(s.images->waiting(), 0);
    EXPECT_EQ(s.metrics.value("duan_image_steps_total", images), static_cast<double>(run));

    // The server is free and answers the next request.
    auto r = s.client()->Post("/v1/images/generations",
                              R"({"prompt":"next","size":"64x64","steps":1})", "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(s.images->steps_run(), run + 1);
    r = s.client()->Get("/metrics");
    ASSERT_TRUE(r);
    EXPECT_NE(r->body.find("duan_images_cancelled_total{endpoint=\"images\"} 2"), std::string::npos)
        << r->body;
}
