#include "hybrid/router.h"

#include <chrono>

namespace duan::hybrid {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

namespace {
milliseconds ms(double v) {
    return milliseconds(static_cast<int64_t>(v));
}
}  // namespace

Router::Router(Scheduler* local, CloudBackend* cloud, Policy policy, DeviceProbe* device,
               Metrics* metrics, std::string local_unavailable_reason)
    : local_(local),
      cloud_(cloud),
      policy_(std::move(policy)),
      device_(device),
      metrics_(metrics),
      local_unavailable_reason_(std::move(local_unavailable_reason)) {
    if (metrics_) {
        metrics_->describe("duan_route_total", "counter", "Requests by where they ran and why");
        metrics_->describe("duan_tokens_total", "counter",
                           "Tokens served, by route (local|cloud) and kind (prompt|completion)");
    }
}

std::string Router::private_reason(const GenRequest& req) const {
    if (req.private_request) return "private";
    if (auto m = policy_.pii.match(req.all_text())) return "pii:" + *m;
    return "";
}

RouteInfo Router::plan(const GenRequest& req) const {
    RouteInput in;
    in.private_reason = private_reason(req);
    in.local_available = local_ != nullptr;
    in.local_unavailable_reason = local_unavailable_reason_;
    in.cloud_configured = cloud_ != nullptr;
    // Private requests never touch the network, not even to probe it.
    in.network_up = in.private_reason.empty() && cloud_ ? cloud_->reachable() : false;
    in.max_tokens = req.max_tokens;
    in.deadline_ms = req.deadline_ms;
    in.complexity = complexity_score(req.all_text());
    if (device_) in.device = device_->read();
    if (local_) {
        int n = local_->count_prompt_tokens(req);
        in.prompt_tokens = n < 0 ? 0 : n;
        in.n_ctx = local_->engine().n_ctx();
        SchedulerStats st = local_->stats();
        double pf =
            policy_.prefill_tok_per_s > 0 ? policy_.prefill_tok_per_s : st.prefill_tok_per_s;
        double dc = policy_.decode_tok_per_s > 0 ? policy_.decode_tok_per_s : st.decode_tok_per_s;
        int gen = req.max_tokens > 0 ? req.max_tokens : policy_.assumed_max_tokens;
        in.predicted_latency_ms = predict_latency_ms(in.prompt_tokens, gen, pf, dc);
        in.local_saturated = local_->saturated();
    }
    return decide(in, policy_);
}

bool Router::local_can_take(const GenRequest& req) const {
    if (!local_) return false;
    int n = local_->count_prompt_tokens(req);
    return n > 0 && n < local_->engine().n_ctx();
}

bool Router::cloud_allowed(const GenRequest& req) const {
    return cloud_ && private_reason(req).empty();
}

void Router::count_route(const RouteInfo& r) {
    if (metrics_)
        metrics_->inc("duan_route_total",
                      {{"route", r.cloud ? "cloud" : "local"}, {"reason", r.reason}});
}

Router::Routed Router::start(const GenRequest& req) {
    RouteInfo r = plan(req);
    Routed out = r.cloud ? start_cloud(req, r, local_can_take(req))
                         : start_local(req, r, cloud_allowed(req) && cloud_->reachable());
    count_route(out.route);
    return out;
}

Router::Routed Router::start_local(const GenRequest& req, RouteInfo r, bool allow_cloud) {
    std::shared_ptr<GenStream> s;
    try {
        s = local_->submit(req);
    } catch (const ApiError& e) {
        // Busy: overflow to the cloud. A 400 (bad prompt) is the client's and is not retried.
        if (allow_cloud && e.status == 429)
            return start_cloud(req, {true, "fallback:local_busy"}, false);
        throw;
    }
    if (!allow_cloud) return {s, r};
    // Wait for the first event so that a local failure (out of memory) can still go to the cloud.
    if (!s->wait_ready(ms(policy_.request_timeout_ms))) {
        s->cancel();
        throw ApiError(504, "server_error", "local generation timed out", "timeout");
    }
    if (auto e = s->front_error(); e && e->code == "local_failure") {
        return start_cloud(req, {true, "fallback:local_failure"}, false);
    }
    return {s, r};
}

Router::Routed Router::start_cloud(const GenRequest& req, RouteInfo r, bool allow_local) {
    GenRequest creq = req;
    if (!policy_.cloud_model.empty()) creq.model = policy_.cloud_model;
    std::shared_ptr<GenStream> s;
    std::string why;
    std::optional<ApiError> err;
    try {
        s = cloud_->submit(creq);
        if (!s->wait_ready(ms(policy_.cloud_first_token_timeout_ms))) {
            s->cancel();
            why = "cloud_timeout";
            err = ApiError(504, "upstream_error", "the cloud endpoint sent nothing in time",
                           "upstream_timeout");
        } else if (auto e = s->front_error()) {
            why = e->code == "upstream_unreachable" ? "cloud_unreachable" : "cloud_error";
            err = *e;
        }
    } catch (const ApiError& e) {
        why = e.code == "upstream_unreachable" ? "cloud_unreachable" : "cloud_error";
        err = e;
    }
    if (!err) return {s, r};
    if (allow_local) return start_local(req, {false, "fallback:" + why}, false);
    throw *err;
}

Router::Completed Router::complete(const GenRequest& req, const std::function<bool()>& client_gone) {
    Routed rt = start(req);
    bool retried = false;
    const auto deadline = Clock::now() + ms(policy_.request_timeout_ms);
    for (;;) {
        Completed c;
        c.route = rt.route;
        std::optional<ApiError> err;
        for (;;) {
            auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
            // Wake at least every 200 ms to notice a client that went away.
            const auto wait = client_gone ? std::min(left, milliseconds(200)) : left;
            auto ev = rt.stream->next(std::max(wait, milliseconds(0)));
            if (!ev) {
                if (client_gone && client_gone()) {
                    rt.stream->cancel();
                    throw ApiError(499, "cancelled", "the client closed the connection",
                                   "cancelled");
                }
                if (Clock::now() < deadline) continue;
                rt.stream->cancel();
                throw ApiError(504, "server_error", "the generation timed out", "timeout");
            }
            if (ev->kind == StreamEvent::Text) {
                c.result.text += ev->text;
            } else if (ev->kind == StreamEvent::Done) {
                std::string text = std::move(c.result.text);
                c.result = std::move(ev->result);
                c.result.text = std::move(text);
                account(c.route, c.result);
                return c;
            } else {
                err = ev->error;
                break;
            }
        }
        // Nothing reached the client yet, so one retry on the other side duplicates nothing.
        if (!retried && rt.route.cloud && local_can_take(req)) {
            rt = start_local(req, {false, "fallback:cloud_broken"}, false);
        } else if (!retried && !rt.route.cloud && err->code == "local_failure" &&
                   cloud_allowed(req)) {
            rt = start_cloud(req, {true, "fallback:local_failure"}, false);
        } else {
            throw *err;
        }
        count_route(rt.route);
        retried = true;
    }
}

void Router::account(const RouteInfo& route, const GenResult& r) {
    if (!metrics_) return;
    const char* where = route.cloud ? "cloud" : "local";
    metrics_->inc("duan_tokens_total", {{"route", where}, {"kind", "prompt"}}, r.prompt_tokens);
    metrics_->inc("duan_tokens_total", {{"route", where}, {"kind", "completion"}},
                  r.completion_tokens);
}

}  // namespace duan::hybrid
