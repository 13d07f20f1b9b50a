#include "core/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <chrono>

namespace duan {

namespace {
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
}
inline uint32_t gen_of(uint64_t s) {
    return static_cast<uint32_t>(s >> 32);
}
inline uint32_t index_of(uint64_t s) {
    return static_cast<uint32_t>(s);
}
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
    for (int i = 1; i < n_threads_; ++i) threads_.emplace_back([this] { worker(); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        stop_.store(true);
        // A new generation wakes spinning workers; they see stop_ first. Its index starts at
        // n_threads_, i.e. every index already claimed: a worker still inside work() whose next
        // claim lands here must not run job_, which points at the last call's function, gone by
        // now (that claim read index 0 and called the dangling job: a rare SEGFAULT in
        // ThreadPool.EveryIndexOnceOverManyCalls, CI 2026-11-27).
        state_.store(static_cast<uint64_t>(gen_of(state_.load()) + 1) << 32 |
                     static_cast<uint32_t>(n_threads_));
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
}

uint32_t ThreadPool::work(uint64_t claim) {
    // `claim` is the state before our increment: its index is ours if it is in range. A claim
    // can land in a newer call than the one that woke us; then that call's job is ours to run
    // (the caller publishes job_ before the state and cannot publish another call before this
    // index is done).
    const int nth = n_threads_;
    for (;;) {
        const uint32_t idx = index_of(claim);
        if (idx >= static_cast<uint32_t>(nth)) return gen_of(claim);
        (*job_.load(std::memory_order_acquire))(static_cast<int>(idx), nth);
        done_.fetch_add(1, std::memory_order_acq_rel);
        claim = state_.fetch_add(1, std::memory_order_acq_rel);
    }
}

void ThreadPool::worker() {
    uint32_t seen = 0;
    for (;;) {
        // Spin on the generation, checking the clock every 64 pauses; then sleep.
        auto idle = [&] { return gen_of(state_.load(std::memory_order_acquire)) == seen; };
        if (idle()) {
            using clock = std::chrono::steady_clock;
            const auto until = clock::now() + std::chrono::microseconds(kSpinMicros);
            for (int i = 1; idle(); ++i) {
                cpu_relax();
                if (i % 64 == 0 && clock::now() > until) {
                    sleepers_.fetch_add(1);  // seq_cst: pairs with run()'s store, then load
                    {
                        std::unique_lock<std::mutex> lk(mu_);
                        cv_.wait(lk, [&] { return stop_.load() || !idle(); });
                    }
                    sleepers_.fetch_sub(1);
                    break;
                }
            }
        }
        if (stop_.load()) return;
        seen = work(state_.fetch_add(1, std::memory_order_acq_rel));
    }
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
    if (n_threads_ == 1) {
        fn(0, 1);
        return;
    }
    // Every index of the previous call is done (we waited), so nobody reads job_ or done_ now.
    job_.store(&fn, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    const uint32_t gen = gen_of(state_.load(std::memory_order_relaxed)) + 1;
    state_.store(static_cast<uint64_t>(gen) << 32);  // seq_cst: publishes job_ and done_
    if (sleepers_.load() > 0) {
        { std::lock_guard<std::mutex> lk(mu_); }  // a sleeper is either waiting or sees gen
        cv_.notify_all();
    }
    work(state_.fetch_add(1, std::memory_order_acq_rel));
    // Only indices that another thread has claimed and is executing remain.
    for (int spin = 0; done_.load(std::memory_order_acquire) != n_threads_; ++spin) {
        if (spin < 1 << 14)
            cpu_relax();
        else
            std::this_thread::yield();  // the thread we wait for may need this core
    }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 1 || n_threads_ == 1) {
        if (n > 0) fn(0, n);
        return;
    }
    run([&](int ith, int nth) {
        const int64_t chunk = (n + nth - 1) / nth;
        const int64_t b = std::min<int64_t>(n, chunk * ith);
        const int64_t e = std::min<int64_t>(n, b + chunk);
        if (b < e) fn(b, e);
    });
}

void ThreadPool::parallel_tasks(int64_t n_tasks, const std::function<void(int64_t, int)>& fn) {
    if (n_tasks <= 1 || n_threads_ == 1) {
        for (int64_t t = 0; t < n_tasks; ++t) fn(t, 0);
        return;
    }
    std::atomic<int64_t> next{0};
    run([&](int ith, int) {
        for (int64_t t; (t = next.fetch_add(1, std::memory_order_relaxed)) < n_tasks;) fn(t, ith);
    });
}

int default_thread_count() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
    return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace duan
