#include "hybrid/policy.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"

namespace duan::hybrid {

using nlohmann::json;

Policy Policy::from_json(const json& j) {
    if (!j.is_object()) fail("policy: the top level must be a JSON object");
    static const std::set<std::string> known = {"mem_budget_mb",
                                                "min_battery_pct",
                                                "max_temp_c",
                                                "complexity_threshold",
                                                "default_deadline_ms",
                                                "assumed_max_tokens",
                                                "prefill_tok_per_s",
                                                "decode_tok_per_s",
                                                "cloud_first_token_timeout_ms",
                                                "cloud_total_timeout_ms",
                                                "request_timeout_ms",
                                                "overflow_to_cloud",
                                                "cloud_model",
                                                "pii"};
    for (const auto& [k, v] : j.items())
        if (!known.count(k)) fail("policy: unknown key \"", k, "\"");
    Policy p;
    auto num = [&](const char* k, double& dst, double lo, double hi) {
        if (!j.contains(k)) return;
        if (!j[k].is_number()) fail("policy: \"", k, "\" must be a number");
        double v = j[k].get<double>();
        if (!(v >= lo && v <= hi)) fail("policy: \"", k, "\" must be in [", lo, ", ", hi, "]");
        dst = v;
    };
    double mb = 0, amt = p.assumed_max_tokens;
    num("mem_budget_mb", mb, 0, 1e9);
    p.mem_budget_bytes = static_cast<uint64_t>(mb * 1024 * 1024);
    num("min_battery_pct", p.min_battery_pct, 0, 100);
    num("max_temp_c", p.max_temp_c, -50, 200);
    num("complexity_threshold", p.complexity_threshold, 0, 1.01);
    num("default_deadline_ms", p.default_deadline_ms, 0, 1e9);
    num("assumed_max_tokens", amt, 1, 1e7);
    p.assumed_max_tokens = static_cast<int>(amt);
    num("prefill_tok_per_s", p.prefill_tok_per_s, 0, 1e9);
    num("decode_tok_per_s", p.decode_tok_per_s, 0, 1e9);
    num("cloud_first_token_timeout_ms", p.cloud_first_token_timeout_ms, 1, 1e9);
    num("cloud_total_timeout_ms", p.cloud_total_timeout_ms, 1, 1e9);
    num("request_timeout_ms", p.request_timeout_ms, 1, 1e9);
    if (j.contains("overflow_to_cloud")) {
        if (!j["overflow_to_cloud"].is_boolean())
            fail("policy: \"overflow_to_cloud\" must be a boolean");
        p.overflow_to_cloud = j["overflow_to_cloud"].get<bool>();
    }
    if (j.contains("cloud_model")) {
        if (!j["cloud_model"].is_string()) fail("policy: \"cloud_model\" must be a string");
        p.cloud_model = j["cloud_model"].get<std::string>();
    }
    if (j.contains("pii")) p.pii = PiiRules::from_json(j["pii"]);
    return p;
}

Policy Policy::load(const std::string& path) {
    std::ifstream f(path);
    if (!f) fail("policy file ", path, ": cannot open");
    std::stringstream ss;
    ss << f.rdbuf();
    json j = json::parse(ss.str(), nullptr, false);
    if (j.is_discarded()) fail("policy file ", path, ": not valid JSON");
    try {
        return from_json(j);
    } catch (const Error& e) {
        fail("policy file ", path, ": ", e.what());
    }
}

double complexity_score(const std::string& text) {
    std::string low(text.size(), ' ');
    std::transform(text.begin(), text.end(), low.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    int words = 0;
    bool in_word = false;
    int questions = 0;
    for (unsigned char c : low) {
        bool sp = std::isspace(c) != 0;
        if (!sp && !in_word) words++;
        in_word = !sp;
        if (c == '?') questions++;
    }
    static const char* kKeywords[] = {
        "prove",   "proof",    "derive",      "step by step", "analyze", "analyse",
        "compare", "evaluate", "optimize",    "algorithm",    "theorem", "implement",
        "debug",   "refactor", "explain why", "trade-off",    "reason",  "calculate"};
    int kw = 0;
    for (const char* k : kKeywords)
        if (low.find(k) != std::string::npos) kw++;
    static const char* kMarkup[] = {"```", "#include", "def ", "\\frac", "\\begin", "select "};
    bool markup = false;
    for (const char* m : kMarkup) markup = markup || low.find(m) != std::string::npos;
    double s = 0.35 * std::min(1.0, words / 300.0) + 0.35 * std::min(1.0, kw / 3.0) +
               0.15 * (markup ? 1.0 : 0.0) + 0.15 * std::min(1.0, std::max(0, questions - 1) / 3.0);
    return std::min(1.0, s);
}

double predict_latency_ms(int prompt_tokens, int gen_tokens, double prefill_tps,
                          double decode_tps) {
    if (prefill_tps <= 0) prefill_tps = 500;
    if (decode_tps <= 0) decode_tps = 20;
    return 1000.0 * (prompt_tokens / prefill_tps + gen_tokens / decode_tps);
}

RouteInfo decide(const RouteInput& in, const Policy& p) {
    auto local = [](std::string why) { return RouteInfo{false, std::move(why)}; };
    auto cloud = [](std::string why) { return RouteInfo{true, std::move(why)}; };
    if (!in.private_reason.empty()) {
        if (in.local_available) return local(in.private_reason);
        throw ApiError(503, "server_error",
                       "this request is private (" + in.private_reason +
                           ") and must stay on the device, but no local model is available",
                       "private_no_local");
    }
    const bool cloud_ok = in.cloud_configured && in.network_up;
    if (!in.local_available) {
        if (cloud_ok) return cloud(in.local_unavailable_reason);
        throw ApiError(503, "server_error",
                       "no local model (" + in.local_unavailable_reason +
                           ") and the cloud endpoint is " +
                           (in.cloud_configured ? "unreachable" : "not configured"),
                       "no_backend");
    }
    if (!in.cloud_configured) return local("no_cloud");
    if (!in.network_up) return local("network_down");
    if (in.prompt_tokens + std::max(0, in.max_tokens) >= in.n_ctx) return cloud("context_exceeded");
    if (in.device.battery_pct && *in.device.battery_pct < p.min_battery_pct &&
        !in.device.charging.value_or(false))
        return cloud("battery_low");
    if (in.device.temp_c && *in.device.temp_c >= p.max_temp_c) return cloud("thermal");
    std::optional<double> deadline = in.deadline_ms;
    if (!deadline && p.default_deadline_ms > 0) deadline = p.default_deadline_ms;
    if (deadline && in.predicted_latency_ms > *deadline) return cloud("deadline");
    if (in.complexity >= p.complexity_threshold) return cloud("complexity");
    if (in.local_saturated && p.overflow_to_cloud) return cloud("local_busy");
    return local("default");
}

}  // namespace duan::hybrid
