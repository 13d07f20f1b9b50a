// One generation's event channel: a producer (the scheduler thread, or the cloud client's thread)
// pushes text deltas and then exactly one terminal event (done or error); the consumer (an HTTP
// handler, or Router::complete) pops them. cancel() asks the producer to stop (client gone).
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "hybrid/api_types.h"

namespace duan::hybrid {

struct StreamEvent {
    enum Kind { Text, Done, Error } kind = Text;
    std::string text;               // Text
    GenResult result;               // Done
    std::optional<ApiError> error;  // Error
};

class GenStream {
  public:
    // Producer side. Events after the terminal one are dropped.
    void push_text(std::string text);
    void finish(GenResult r);
    void fail(ApiError e);

    // Consumer side: waits up to `timeout` for the next event; nullopt on timeout.
    std::optional<StreamEvent> next(std::chrono::milliseconds timeout);
    // Waits until an event is queued (without taking it); false on timeout.
    bool wait_ready(std::chrono::milliseconds timeout);
    // The kind of the queued front event, nullopt when none is queued.
    std::optional<StreamEvent::Kind> front_kind() const;
    // The queued front event when it is an error (copy), else nullopt.
    std::optional<ApiError> front_error() const;

    // Sets the flag and runs the cancel hook (e.g. closing an upstream socket).
    void cancel();
    // A hook run by cancel() (at once if already cancelled). The producer must clear it before
    // whatever it touches goes away; clearing waits for a running hook to return.
    void set_cancel_hook(std::function<void()> hook);
    bool cancelled() const { return cancelled_.load(); }
    bool terminated() const;  // the terminal event was pushed

  private:
    void push(StreamEvent ev);
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<StreamEvent> q_;
    bool terminal_ = false;
    std::atomic<bool> cancelled_{false};
    std::mutex hook_mu_;
    std::function<void()> hook_;
};

// Anything that can run a generation: the local scheduler, the cloud client, the router.
class Backend {
  public:
    virtual ~Backend() = default;
    // Starts a generation and returns at once; throws ApiError when it cannot even start
    // (400 prompt longer than the context, 429 queue full, 503 shutting down / unreachable).
    virtual std::shared_ptr<GenStream> submit(const GenRequest& req) = 0;
};

}  // namespace duan::hybrid
