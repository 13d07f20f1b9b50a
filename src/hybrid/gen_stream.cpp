#include "hybrid/gen_stream.h"

namespace duan::hybrid {

void GenStream::push(StreamEvent ev) {
    {
        std::lock_guard<std::mutex> lk(mu_);
        if (terminal_) return;
        if (ev.kind != StreamEvent::Text) terminal_ = true;
        q_.push_back(std::move(ev));
    }
    cv_.notify_all();
}

void GenStream::push_text(std::string text) {
    if (text.empty()) return;
    StreamEvent ev;
    ev.kind = StreamEvent::Text;
    ev.text = std::move(text);
    push(std::move(ev));
}

void GenStream::finish(GenResult r) {
    StreamEvent ev;
    ev.kind = StreamEvent::Done;
    ev.result = std::move(r);
    push(std::move(ev));
}

void GenStream::fail(ApiError e) {
    StreamEvent ev;
    ev.kind = StreamEvent::Error;
    ev.error = std::move(e);
    push(std::move(ev));
}

std::optional<StreamEvent> GenStream::next(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lk(mu_);
    if (!cv_.wait_for(lk, timeout, [&] { return !q_.empty(); })) return std::nullopt;
    StreamEvent ev = std::move(q_.front());
    q_.pop_front();
    return ev;
}

bool GenStream::wait_ready(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lk(mu_);
    return cv_.wait_for(lk, timeout, [&] { return !q_.empty(); });
}

std::optional<StreamEvent::Kind> GenStream::front_kind() const {
    std::lock_guard<std::mutex> lk(mu_);
    if (q_.empty()) return std::nullopt;
    return q_.front().kind;
}

std::optional<ApiError> GenStream::front_error() const {
    std::lock_guard<std::mutex> lk(mu_);
    if (q_.empty() || q_.front().kind != StreamEvent::Error) return std::nullopt;
    return q_.front().error;
}

void GenStream::cancel() {
    cancelled_.store(true);
    std::lock_guard<std::mutex> lk(hook_mu_);
    if (hook_) hook_();
}

void GenStream::set_cancel_hook(std::function<void()> hook) {
    std::lock_guard<std::mutex> lk(hook_mu_);
    hook_ = std::move(hook);
    if (hook_ && cancelled_.load()) hook_();
}

bool GenStream::terminated() const {
    std::lock_guard<std::mutex> lk(mu_);
    return terminal_;
}

}  // namespace duan::hybrid
