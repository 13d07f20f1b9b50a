// The routing policy: which requests run on the device and which go to the cloud endpoint. A pure
// function of a RouteInput snapshot (decide()), so every rule is testable without a model, a
// network or a battery. Rules, first match wins (docs/SERVING.md has the table):
//   1. private (X-Duan-Private / "duan_private" / a PII pattern)  -> local, or 503 if no local
//   model
//   2. no usable local model (none, or over the memory budget)    -> cloud, or 503 if no cloud
//   3. no cloud configured / network unreachable                  -> local
//   4. prompt + max_tokens do not fit the local context           -> cloud
//   5. battery below min_battery_pct and not charging             -> cloud
//   6. temperature at or above max_temp_c                          -> cloud
//   7. predicted local latency above the deadline                  -> cloud
//   8. complexity score at or above complexity_threshold           -> cloud
//   9. local slots and queue busy (overflow_to_cloud)              -> cloud
//  10. otherwise                                                   -> local
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "hybrid/api_types.h"
#include "hybrid/device_state.h"
#include "hybrid/privacy.h"

namespace duan::hybrid {

struct Policy {
    uint64_t mem_budget_bytes = 0;  // model bytes allowed on the device; 0: no limit
    double min_battery_pct = 20;
    double max_temp_c = 80;
    double complexity_threshold = 0.6;
    double default_deadline_ms = 0;  // applies when the request names none; 0: no deadline
    int assumed_max_tokens = 256;    // for latency prediction when max_tokens is absent
    double prefill_tok_per_s = 0;    // 0: use the measured speed (or 500 before any measurement)
    double decode_tok_per_s = 0;     // 0: measured (or 20)
    double cloud_first_token_timeout_ms = 10000;  // no first event by then: fall back to local
    double cloud_total_timeout_ms = 300000;
    double request_timeout_ms = 600000;  // any generation, local or cloud
    bool overflow_to_cloud = true;
    std::string cloud_model;  // model name sent upstream; "" keeps the client's
    PiiRules pii;

    // Keys as above with _mb for the budget ("mem_budget_mb") and "pii": see PiiRules::from_json.
    // Unknown keys are an error (a typo must not silently change routing).
    static Policy from_json(const nlohmann::json& j);
    static Policy load(const std::string& path);  // a JSON file; errors name the file
};

// A documented, deterministic complexity score in [0, 1]:
//   0.35 * min(1, words / 300)                      -- long prompts
// + 0.35 * min(1, reasoning_keywords / 3)           -- "prove", "step by step", "analyze", ...
// + 0.15 * (code or math markup present)            -- ``` #include def \frac \begin SELECT
// + 0.15 * min(1, max(0, question_marks - 1) / 3)   -- several questions at once
double complexity_score(const std::string& text);

struct RouteInput {
    std::string private_reason;    // "" not private; "private" or "pii:<rule>"
    bool local_available = false;  // a local model is loaded
    std::string local_unavailable_reason = "no_local_model";  // e.g. "model_exceeds_budget"
    bool cloud_configured = false;
    bool network_up = true;
    int prompt_tokens = 0;  // local tokenizer count (or an estimate)
    int max_tokens = -1;    // as requested
    int n_ctx = 0;          // local context per sequence
    double predicted_latency_ms = 0;
    std::optional<double> deadline_ms;
    double complexity = 0;
    DeviceState device;
    bool local_saturated = false;
};

// Throws ApiError(503) when no path can serve the request.
RouteInfo decide(const RouteInput& in, const Policy& p);

// Predicted local time: prompt / prefill speed + generated tokens / decode speed.
double predict_latency_ms(int prompt_tokens, int gen_tokens, double prefill_tps, double decode_tps);

}  // namespace duan::hybrid
