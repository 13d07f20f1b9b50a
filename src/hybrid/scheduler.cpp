#include "hybrid/scheduler.h"

#include <algorithm>

#include "llm/sampler.h"

namespace duan::hybrid {

using Clock = std::chrono::steady_clock;

struct Scheduler::Job {
    GenRequest req;
    std::vector<int32_t> prompt;
    std::shared_ptr<GenStream> stream;
    StopMatcher stop;
    int max_gen = 0;  // completion tokens allowed (max_tokens, capped by the context)
    int n_gen = 0;
    Job(GenRequest r, std::vector<int32_t> p, int max_gen_)
        : req(std::move(r)),
          prompt(std::move(p)),
          stream(std::make_shared<GenStream>()),
          stop(req.stop),
          max_gen(max_gen_) {}
};

Scheduler::Scheduler(std::unique_ptr<SeqEngine> engine, SchedulerOptions opt)
    : engine_(std::move(engine)), opt_(opt) {
    slots_.resize(static_cast<size_t>(std::max(1, engine_->n_slots())));
    stats_.slots = static_cast<int>(slots_.size());
    stats_.max_queue = opt_.max_queue;
    thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
    shutdown(false);
}

int Scheduler::count_prompt_tokens(const GenRequest& req) const {
    try {
        return static_cast<int>(engine_->tokenize(req).size());
    } catch (const std::exception&) {
        return -1;
    }
}

std::shared_ptr<GenStream> Scheduler::submit(const GenRequest& req) {
    std::vector<int32_t> prompt = engine_->tokenize(req);  // may throw ApiError(400)
    const int n_ctx = engine_->n_ctx();
    if (prompt.empty()) throw bad_request("the prompt is empty", req.chat ? "messages" : "prompt");
    if (static_cast<int>(prompt.size()) >= n_ctx)
        throw bad_request("the prompt has " + std::to_string(prompt.size()) +
                              " tokens; the context holds " + std::to_string(n_ctx),
                          req.chat ? "messages" : "prompt", "context_length_exceeded");
    // max_tokens beyond the context is capped (finish_reason "length"), as llama.cpp's server does.
    int room = n_ctx - static_cast<int>(prompt.size());
    int max_gen = req.max_tokens > 0 ? std::min(req.max_tokens, room) : room;
    auto job = std::make_shared<Job>(req, std::move(prompt), max_gen);
    {
        std::lock_guard<std::mutex> lk(mu_);
        if (!accepting_)
            throw ApiError(503, "server_error", "the server is shutting down", "shutting_down");
        bool free_slot = std::any_of(slots_.begin(), slots_.end(), [](auto& s) { return !s; });
        if (!(free_slot && queue_.empty()) && static_cast<int>(queue_.size()) >= opt_.max_queue) {
            ApiError e(429, "rate_limit_error",
                       "the server is busy: all slots and the queue are full; retry later",
                       "queue_full");
            e.retry_after_s = opt_.retry_after_s;
            throw e;
        }
        queue_.push_back(job);
        stats_.queued = static_cast<int>(queue_.size());
    }
    cv_.notify_all();
    return job->stream;
}

bool Scheduler::saturated() const {
    std::lock_guard<std::mutex> lk(mu_);
    bool free_slot = std::any_of(slots_.begin(), slots_.end(), [](auto& s) { return !s; });
    return !free_slot || !queue_.empty();
}

SchedulerStats Scheduler::stats() const {
    std::lock_guard<std::mutex> lk(mu_);
    return stats_;
}

void Scheduler::shutdown(bool drain) {
    std::lock_guard<std::mutex> g(shutdown_mu_);
    {
        std::lock_guard<std::mutex> lk(mu_);
        accepting_ = false;
        drain_ = drain_ && drain;
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void Scheduler::finish_job(int slot, const std::string& reason) {
    auto& job = slots_[static_cast<size_t>(slot)];
    std::string rest = job->stop.flush();
    job->stream->push_text(std::move(rest));
    GenResult r;
    r.finish_reason = reason;
    r.prompt_tokens = static_cast<int>(job->prompt.size());
    r.completion_tokens = job->n_gen;
    job->stream->finish(std::move(r));
    engine_->end(slot);
    job.reset();
}

void Scheduler::loop() {
    std::vector<int> active;
    std::vector<SlotStep> out;
    for (;;) {
        {
            std::unique_lock<std::mutex> lk(mu_);
            // A stop without drain ends everything that is left.
            if (stop_ && !drain_) {
                ApiError e(503, "server_error", "the server shut down before this request finished",
                           "shutting_down");
                for (auto& j : queue_) j->stream->fail(e);
                queue_.clear();
                for (size_t s = 0; s < slots_.size(); ++s)
                    if (slots_[s]) {
                        slots_[s]->stream->fail(e);
                        engine_->end(static_cast<int>(s));
                        slots_[s].reset();
                    }
            }
            // Queued requests whose client left are dropped before they cost anything.
            std::erase_if(queue_, [](auto& j) { return j->stream->cancelled(); });
            for (size_t s = 0; s < slots_.size() && !queue_.empty(); ++s) {
                if (slots_[s]) continue;
                auto job = queue_.front();
                queue_.pop_front();
                try {
                    engine_->begin(static_cast<int>(s), job->req, job->prompt);
                    slots_[s] = job;
                    stats_.prompt_tokens += job->prompt.size();
                } catch (const ApiError& e) {
                    job->stream->fail(e);
                } catch (const std::exception& e) {
                    job->stream->fail(ApiError(500, "server_error",
                                               std::string("local backend: ") + e.what(),
                                               "local_failure"));
                }
            }
            stats_.queued = static_cast<int>(queue_.size());
            active.clear();
            for (size_t s = 0; s < slots_.size(); ++s) {
                if (!slots_[s]) continue;
                if (slots_[s]->stream->cancelled()) {  // client gone: free the slot now
                    slots_[s]->stream->fail(
                        ApiError(499, "cancelled", "request cancelled", "cancelled"));
                    engine_->end(static_cast<int>(s));
                    slots_[s].reset();
                    continue;
                }
                active.push_back(static_cast<int>(s));
            }
            stats_.active = static_cast<int>(active.size());
            if (active.empty()) {
                if (stop_ && queue_.empty()) return;
                cv_.wait_for(lk, std::chrono::milliseconds(100));
                continue;
            }
        }
        // The forward pass runs without the lock: submit() and stats() stay responsive.
        auto t0 = Clock::now();
        out.assign(active.size(), SlotStep{});
        try {
            engine_->step(active, out);
        } catch (const std::exception& e) {
            // E.g. out of memory: every sequence in this batch fails; the router may retry them
            // in the cloud when nothing was sent yet.
            std::lock_guard<std::mutex> lk(mu_);
            ApiError err(503, "server_error", std::string("local backend failed: ") + e.what(),
                         "local_failure");
            for (int s : active) {
                slots_[static_cast<size_t>(s)]->stream->fail(err);
                engine_->end(s);
                slots_[static_cast<size_t>(s)].reset();
            }
            continue;
        }
        double dt = std::chrono::duration<double>(Clock::now() - t0).count();
        std::lock_guard<std::mutex> lk(mu_);
        stats_.steps++;
        stats_.max_batch_seqs = std::max(stats_.max_batch_seqs, static_cast<int>(active.size()));
        int n_prompt = 0, n_sampled = 0;
        for (size_t i = 0; i < active.size(); ++i) {
            const int s = active[i];
            auto& job = slots_[static_cast<size_t>(s)];
            const SlotStep& o = out[i];
            n_prompt += o.prompt_consumed;
            if (!o.sampled) {
                if (o.ctx_full) finish_job(s, "length");
                continue;
            }
            n_sampled++;
            if (o.eog) {
                finish_job(s, "stop");
                continue;
            }
            job->n_gen++;
            stats_.tokens_generated++;
            auto fed = job->stop.feed(o.piece);
            job->stream->push_text(std::move(fed.text));
            if (fed.stopped) {
                finish_job(s, "stop");
            } else if (job->n_gen >= job->max_gen || o.ctx_full) {
                finish_job(s, "length");
            }
        }
        // Moving averages of the engine's speed, for the router's latency prediction.
        if (dt > 0) {
            auto ema = [](double& avg, double x) { avg = avg == 0 ? x : 0.8 * avg + 0.2 * x; };
            if (n_prompt > 0)
                ema(stats_.prefill_tok_per_s, n_prompt / dt);
            else if (n_sampled > 0)
                ema(stats_.decode_tok_per_s, 1.0 / dt);  // per sequence
        }
    }
}

}  // namespace duan::hybrid
