// Routing policy, complexity score, PII rules, device state and the Router's fallbacks, with fake
// local and cloud backends (no HTTP).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "core/error.h"
#include "hybrid/fake_engine.h"
#include "hybrid/router.h"
#include "wait_until.h"

using namespace duan::hybrid;
using namespace std::chrono_literals;

namespace {

RouteInput base_input() {
    RouteInput in;
    in.local_available = true;
    in.cloud_configured = true;
    in.network_up = true;
    in.prompt_tokens = 10;
    in.max_tokens = 10;
    in.n_ctx = 512;
    in.predicted_latency_ms = 100;
    in.complexity = 0.1;
    return in;
}

}  // namespace

TEST(RouterPolicy, RulesInOrder) {
    Policy p;
    RouteInfo r = decide(base_input(), p);
    EXPECT_FALSE(r.cloud);
    EXPECT_EQ(r.reason, "default");
    EXPECT_EQ(r.header(), "local; reason=default");

    auto with = [&](auto fn) {
        RouteInput in = base_input();
        fn(in);
        return decide(in, p);
    };
    EXPECT_EQ(with([](RouteInput& i) {
                  i.private_reason = "pii:email";
                  i.complexity = 1;
              }).reason,
              "pii:email");
    EXPECT_FALSE(with([](RouteInput& i) {
                     i.private_reason = "private";
                     i.device.battery_pct = 1;
                 }).cloud);
    EXPECT_EQ(with([](RouteInput& i) { i.local_available = false; }).reason, "no_local_model");
    EXPECT_EQ(with([](RouteInput& i) {
                  i.cloud_configured = false;
                  i.complexity = 1;
              }).reason,
              "no_cloud");
    EXPECT_EQ(with([](RouteInput& i) {
                  i.network_up = false;
                  i.complexity = 1;
              }).reason,
              "network_down");
    EXPECT_EQ(with([](RouteInput& i) {
                  i.prompt_tokens = 500;
                  i.max_tokens = 100;
              }).reason,
              "context_exceeded");
    EXPECT_EQ(with([](RouteInput& i) { i.device.battery_pct = 10; }).reason, "battery_low");
    EXPECT_EQ(with([](RouteInput& i) {
                  i.device.battery_pct = 10;
                  i.device.charging = true;
              }).reason,
              "default");
    EXPECT_EQ(with([](RouteInput& i) { i.device.temp_c = 85; }).reason, "thermal");
    EXPECT_EQ(with([](RouteInput& i) { i.deadline_ms = 50; }).reason, "deadline");
    EXPECT_EQ(with([](RouteInput& i) { i.deadline_ms = 500; }).reason, "default");
    EXPECT_EQ(with([](RouteInput& i) { i.complexity = 0.7; }).reason, "complexity");
    EXPECT_EQ(with([](RouteInput& i) { i.local_saturated = true; }).reason, "local_busy");
    EXPECT_TRUE(with([](RouteInput& i) { i.local_saturated = true; }).cloud);

    // Nothing can serve: 503, never a silent leak of a private request.
    RouteInput in = base_input();
    in.private_reason = "private";
    in.local_available = false;
    try {
        decide(in, p);
        FAIL();
    } catch (const ApiError& e) {
        EXPECT_EQ(e.status, 503);
        EXPECT_EQ(e.code, "private_no_local");
    }
    in = base_input();
    in.local_available = false;
    in.network_up = false;
    EXPECT_THROW(decide(in, p), ApiError);
}

TEST(RouterPolicy, DefaultDeadlineFromPolicy) {
    Policy p;
    p.default_deadline_ms = 50;
    EXPECT_EQ(decide(base_input(), p).reason, "deadline");
    EXPECT_NEAR(predict_latency_ms(100, 20, 1000, 10), 100 + 2000, 1e-6);
}

TEST(RouterPolicy, ComplexityScore) {
    EXPECT_LT(complexity_score("hello there"), 0.05);
    double hard = complexity_score(
        "Prove the theorem step by step, then analyze and compare the algorithm. Why? How? "
        "What?\n```\ncode\n```");
    EXPECT_GE(hard, 0.6);
    std::string longtext;
    for (int i = 0; i < 400; ++i) longtext += "word ";
    EXPECT_NEAR(complexity_score(longtext), 0.35, 1e-9);
    EXPECT_LE(complexity_score(longtext + "prove derive analyze ``` ? ? ? ? ?"), 1.0);
}

TEST(RouterPolicy, PiiRules) {
    PiiRules r;
    EXPECT_EQ(r.match("write to jane.doe@example.com please").value_or(""), "email");
    EXPECT_EQ(r.match("call me at (555) 123-4567").value_or(""), "phone");
    EXPECT_EQ(r.match("call +44 20 7946 0958").value_or(""), "phone");
    EXPECT_EQ(r.match("我的手机 13812345678").value_or(""), "phone_cn_mobile");
    EXPECT_EQ(r.match("ssn 123-45-6789").value_or(""), "ssn");
    EXPECT_EQ(r.match("id 11010519491231002X").value_or(""), "id_cn");
    EXPECT_EQ(r.match("card 4111 1111 1111 1111").value_or(""), "card_number");
    EXPECT_FALSE(r.match("In 2024 there were 365 days and 12 months; version 1.2.3"));
    EXPECT_FALSE(r.match(""));
    // Long input: windows keep std::regex's recursion bounded; a match at the end is still found.
    std::string big(3 << 20, 'a');
    EXPECT_FALSE(r.match(big));
    EXPECT_EQ(r.match(big + " bob@example.org").value_or(""), "email");
    EXPECT_EQ(r.match(big + " 555-123-4567").value_or(""), "phone");
    EXPECT_FALSE(r.match(std::string(1 << 20, '@') + "a@b"));
    EXPECT_EQ(r.match(std::string(1000, '7')).value_or(""), "long_number");
    std::string nums;
    for (int i = 0; i < 100000; ++i) nums += "12 ";  // short runs, joined by spaces: capped too
    EXPECT_TRUE(r.match(nums));

    PiiRules c = PiiRules::from_json(
        nlohmann::json::parse(R"({"use_defaults":false,"patterns":{"employee":"EMP-\\d{6}"}})"));
    EXPECT_EQ(c.size(), 1u);
    EXPECT_EQ(c.match("badge EMP-123456").value_or(""), "employee");
    EXPECT_FALSE(c.match("jane@example.com"));
    EXPECT_THROW(PiiRules::from_json(nlohmann::json::parse(R"({"patterns":{"bad":"(["}})")),
                 duan::Error);
}

TEST(RouterPolicy, PolicyFromJson) {
    Policy p = Policy::from_json(nlohmann::json::parse(
        R"({"mem_budget_mb":100,"min_battery_pct":30,"max_temp_c":70,"complexity_threshold":0.5,
            "default_deadline_ms":2000,"overflow_to_cloud":false,"cloud_model":"gpt-x"})"));
    EXPECT_EQ(p.mem_budget_bytes, 100ull << 20);
    EXPECT_EQ(p.min_battery_pct, 30);
    EXPECT_FALSE(p.overflow_to_cloud);
    EXPECT_EQ(p.cloud_model, "gpt-x");
    EXPECT_THROW(Policy::from_json(nlohmann::json::parse(R"({"min_batery_pct":30})")), duan::Error);
    EXPECT_THROW(Policy::from_json(nlohmann::json::parse(R"({"min_battery_pct":300})")),
                 duan::Error);
    EXPECT_THROW(Policy::from_json(nlohmann::json::parse(R"({"overflow_to_cloud":1})")),
                 duan::Error);
    EXPECT_THROW(Policy::load("/nonexistent/policy.json"), duan::Error);
}

TEST(RouterPolicy, DeviceProbeReadsSysfsAndOverrides) {
    namespace fs = std::filesystem;
    fs::path root = fs::temp_directory_path() / ("duan_sysfs_" + std::to_string(::getpid()));
    fs::create_directories(root / "class/power_supply/BAT0");
    fs::create_directories(root / "class/power_supply/AC");
    fs::create_directories(root / "class/thermal/thermal_zone0");
    fs::create_directories(root / "class/thermal/thermal_zone1");
    auto put = [](const fs::path& p, const std::string& v) { std::ofstream(p) << v << "\n"; };
    put(root / "class/power_supply/AC/type", "Mains");
    put(root / "class/power_supply/BAT0/type", "Battery");
    put(root / "class/power_supply/BAT0/capacity", "42");
    put(root / "class/power_supply/BAT0/status", "Discharging");
    put(root / "class/thermal/thermal_zone0/temp", "45000");
    put(root / "class/thermal/thermal_zone1/temp", "61500");
    DeviceProbe probe(root.string());
    DeviceState st = probe.read();
    EXPECT_EQ(st.battery_pct.value_or(-1), 42);
    EXPECT_EQ(st.charging.value_or(true), false);
    EXPECT_DOUBLE_EQ(st.temp_c.value_or(0), 61.5);
    probe.set_overrides({90.0, true, 30.0});
    st = probe.read();
    EXPECT_EQ(*st.battery_pct, 90);
    EXPECT_TRUE(*st.charging);
    EXPECT_EQ(*st.temp_c, 30);
    DeviceState none = DeviceProbe((root / "missing").string()).read();
    EXPECT_FALSE(none.battery_pct || none.charging || none.temp_c);
    fs::remove_all(root);
}

// ---- Router with a fake cloud ------------------------------------------------------------------

namespace {

class FakeCloud : public CloudBackend {
  public:
    enum Mode { Ok, Refuse, Hang, Error500, CutMidway } mode = Ok;
    std::atomic<int> calls{0};
    std::atomic<bool> up{true};
    std::vector<std::thread> threads;
    ~FakeCloud() override {
        for (auto& t : threads) t.join();
    }
    bool reachable() override { return up; }
    std::shared_ptr<GenStream> submit(const GenRequest& req) override {
        calls++;
        last_text = req.all_text();
        if (mode == Refuse)
            throw ApiError(502, "upstream_error", "connection refused", "upstream_unreachable");
        auto s = std::make_shared<GenStream>();
        threads.emplace_back([s, m = mode] {
            if (m == Hang) {
                while (!s->cancelled()) std::this_thread::sleep_for(1ms);
                s->fail(ApiError(499, "cancelled", "cancelled", "cancelled"));
                return;
            }
            if (m == Error500)
                return s->fail(ApiError(502, "upstream_error", "HTTP 500", "upstream_error"));
            s->push_text("cloud ");
            if (m == CutMidway)
                return s->fail(ApiError(502, "upstream_error", "cut", "upstream_broken"));
            s->push_text("answer");
            s->finish(GenResult{"", "stop", 7, 2});
        });
        return s;
    }
    std::string last_text;
};

struct RouterFixture {
    Metrics metrics;
    FakeEngine* eng;
    std::unique_ptr<Scheduler> local;
    FakeCloud cloud;
    std::unique_ptr<Router> router;
    explicit RouterFixture(Policy p = {}, FakeEngineOptions fo = {}, SchedulerOptions so = {}) {
        auto e = std::make_unique<FakeEngine>(fo);
        eng = e.get();
        local = std::make_unique<Scheduler>(std::move(e), so);
        p.cloud_first_token_timeout_ms = 200;
        router = std::make_unique<Router>(local.get(), &cloud, std::move(p), nullptr, &metrics);
    }
};

GenRequest chat(const std::string& text, int max_tokens = 4) {
    GenRequest r;
    r.messages = {{"user", text}};
    r.max_tokens = max_tokens;
    return r;
}

const char* kHard = "Prove step by step and analyze the algorithm: why? how? what? ```x```";

}  // namespace

TEST(RouterFallback, SimpleGoesLocalComplexGoesCloud) {
    RouterFixture f;
    auto c = f.router->complete(chat("hi"));
    EXPECT_FALSE(c.route.cloud);
    EXPECT_EQ(c.result.text, " the quick brown fox");
    c = f.router->complete(chat(kHard));
    EXPECT_TRUE(c.route.cloud);
    EXPECT_EQ(c.route.reason, "complexity");
    EXPECT_EQ(c.result.text, "cloud answer");
    EXPECT_EQ(f.metrics.value("duan_tokens_total", {{"route", "cloud"}, {"kind", "completion"}}),
              2);
    EXPECT_EQ(f.metrics.value("duan_tokens_total", {{"route", "local"}, {"kind", "completion"}}),
              4);
}

TEST(RouterFallback, PrivateNeverLeaves) {
    RouterFixture f;
    GenRequest r = chat(kHard);
    r.private_request = true;
    auto c = f.router->complete(r);
    EXPECT_FALSE(c.route.cloud);
    EXPECT_EQ(c.route.reason, "private");
    c = f.router->complete(chat(std::string(kHard) + " mail me: a.b@example.com"));
    EXPECT_FALSE(c.route.cloud);
    EXPECT_EQ(c.route.reason, "pii:email");
    // Even when local is broken, a private request fails rather than leaving.
    f.eng->fail_steps = 1;
    r = chat("hello, my number is 555-123-4567");
    EXPECT_THROW(f.router->complete(r), ApiError);
    EXPECT_EQ(f.cloud.calls.load(), 0);
}

TEST(RouterFallback, CloudFailuresFallBackToLocal) {
    for (auto mode :
         {FakeCloud::Refuse, FakeCloud::Hang, FakeCloud::Error500, FakeCloud::CutMidway}) {
        RouterFixture f;
        f.cloud.mode = mode;
        auto c = f.router->complete(chat(kHard));
        EXPECT_FALSE(c.route.cloud) << mode;
        EXPECT_EQ(c.route.reason.rfind("fallback:", 0), 0u) << c.route.reason;
        EXPECT_EQ(c.result.text, " the quick brown fox") << mode;  // no cloud text mixed in
    }
    RouterFixture f;
    f.cloud.mode = FakeCloud::Hang;
    EXPECT_EQ(f.router->complete(chat(kHard)).route.reason, "fallback:cloud_timeout");
}

TEST(RouterFallback, StreamingCutMidwayIsReportedNotRetried) {
    RouterFixture f;
    f.cloud.mode = FakeCloud::CutMidway;
    // start() returns once the first event (text) is there: the break comes after text was sent.
    auto rt = f.router->start(chat(kHard));
    EXPECT_TRUE(rt.route.cloud);
    auto ev = rt.stream->next(1s);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->kind, StreamEvent::Text);
    ev = rt.stream->next(1s);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->kind, StreamEvent::Error);
    EXPECT_EQ(ev->error->code, "upstream_broken");
}

TEST(RouterFallback, LocalOverloadAndFailureGoToCloud) {
    FakeEngineOptions fo;
    fo.n_slots = 1;
    fo.step_delay = 5ms;
    SchedulerOptions so;
    so.max_queue = 0;
    Policy p;
    p.overflow_to_cloud = false;  // exercise the 429 -> cloud path, not the planner's
    RouterFixture f(p, fo, so);
    auto busy = f.local->submit(chat("x", 200));
    // The one slot must be taken before the next request (a fixed sleep would race under qemu).
    duan::test::wait_until([&] { return f.eng->begun.load() >= 1; }, 5s);
    ASSERT_EQ(f.eng->begun.load(), 1);
    auto c = f.router->complete(chat("hi"));
    EXPECT_TRUE(c.route.cloud);
    EXPECT_EQ(c.route.reason, "fallback:local_busy");
    busy->cancel();

    RouterFixture g;
    g.eng->fail_steps = 1;
    c = g.router->complete(chat("hi"));
    EXPECT_TRUE(c.route.cloud);
    EXPECT_EQ(c.route.reason, "fallback:local_failure");
}

TEST(RouterFallback, NetworkDownAndDeviceState) {
    RouterFixture f;
    f.cloud.up = false;
    auto c = f.router->complete(chat(kHard));
    EXPECT_FALSE(c.route.cloud);
    EXPECT_EQ(c.route.reason, "network_down");
    EXPECT_EQ(f.cloud.calls.load(), 0);

    Policy p;
    DeviceProbe probe("/nonexistent", {10.0, false, std::nullopt});
    RouterFixture g;
    Router r(g.local.get(), &g.cloud, p, &probe);
    EXPECT_EQ(r.plan(chat("hi")).reason, "battery_low");
    probe.set_overrides({std::nullopt, std::nullopt, 95.0});
    EXPECT_EQ(r.plan(chat("hi")).reason, "thermal");
    GenRequest d = chat("hi", 100);
    d.deadline_ms = 1;  // 100 tokens at the default 20 tok/s cannot make 1 ms
    probe.set_overrides({});
    EXPECT_EQ(r.plan(d).reason, "deadline");
}
