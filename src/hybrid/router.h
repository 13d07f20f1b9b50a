// The device <-> cloud router: answers each request on the local model (Scheduler) or forwards it
// to an OpenAI-compatible cloud endpoint (CloudBackend), as the Policy decides, with fallbacks:
//   - cloud refuses / errors / sends nothing within cloud_first_token_timeout_ms -> local (when a
//     local model can serve it and the request fits), reason "fallback:cloud_<why>";
//   - local queue full or the local engine fails (e.g. out of memory) before the first token ->
//     cloud (unless the request is private), reason "fallback:local_<why>";
//   - a stream that breaks after text was sent cannot be retried without duplicating text: the
//     HTTP layer ends it with an error event. complete() (non-streamed) has sent nothing yet, so it
//     retries the whole request on the other side once.
// Private requests (flag, header or PII match) are never given to the cloud backend.
// Usable as a library API without HTTP: start() / complete().
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "hybrid/device_state.h"
#include "hybrid/gen_stream.h"
#include "hybrid/metrics.h"
#include "hybrid/policy.h"
#include "hybrid/scheduler.h"

namespace duan::hybrid {

// An OpenAI-compatible upstream. submit() streams its answer (text deltas, then done with usage).
class CloudBackend : public Backend {
  public:
    // Cached reachability (a failed connection marks the network down for a while).
    virtual bool reachable() = 0;
};

class Router {
  public:
    // local / cloud may be null (no model, or no cloud). local_unavailable_reason explains a null
    // local ("no_local_model", "model_exceeds_budget"). device / metrics may be null.
    Router(Scheduler* local, CloudBackend* cloud, Policy policy, DeviceProbe* device = nullptr,
           Metrics* metrics = nullptr, std::string local_unavailable_reason = "no_local_model");

    // The policy decision alone (no side effects). Throws ApiError(503) when nothing can serve.
    RouteInfo plan(const GenRequest& req) const;
    // Why a request is private: "private", "pii:<rule>", or "" when it may leave the device.
    std::string private_reason(const GenRequest& req) const;

    struct Routed {
        std::shared_ptr<GenStream> stream;  // its first event is queued already
        RouteInfo route;
    };
    // Decides, starts, and waits for the first event, applying the start-up fallbacks above.
    Routed start(const GenRequest& req);

    struct Completed {
        GenResult result;  // text and usage
        RouteInfo route;
    };
    // Non-streamed generation with all fallbacks. Throws ApiError. `client_gone` (optional) is
    // polled a few times a second; when it says true the generation is cancelled (its slot is
    // freed at once) and complete() throws 499 "cancelled".
    Completed complete(const GenRequest& req, const std::function<bool()>& client_gone = {});

    // Cost accounting and metrics of a finished request.
    void account(const RouteInfo& route, const GenResult& r);

    const Policy& policy() const { return policy_; }
    Scheduler* local() const { return local_; }
    CloudBackend* cloud() const { return cloud_; }

  private:
    Routed start_local(const GenRequest& req, RouteInfo r, bool allow_cloud);
    Routed start_cloud(const GenRequest& req, RouteInfo r, bool allow_local);
    bool local_can_take(const GenRequest& req) const;
    bool cloud_allowed(const GenRequest& req) const;
    void count_route(const RouteInfo& r);

    Scheduler* local_;
    CloudBackend* cloud_;
    Policy policy_;
    DeviceProbe* device_;
    Metrics* metrics_;
    std::string local_unavailable_reason_;
};

}  // namespace duan::hybrid
