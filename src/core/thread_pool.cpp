#include "core/thread_pool.h"

#include <sched.h>

#include <algorithm>

namespace duan {

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
    for (int i = 1; i < n_threads_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        stop_.store(true);
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
}

namespace {
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
}
}  // namespace

void ThreadPool::worker(int ith) {
    uint64_t seen = 0;
    for (;;) {
        // Spin, then yield (another process may need this core), then sleep.
        int spin = 0;
        while (generation_.load(std::memory_order_acquire) == seen && !stop_.load()) {
            if (++spin < 4096) {
                cpu_relax();
            } else if (spin < 4096 + 256) {
                std::this_thread::yield();
            } else {
                std::unique_lock<std::mutex> lk(mu_);
                cv_.wait(lk, [&] {
                    return stop_.load() || generation_.load(std::memory_order_acquire) != seen;
                });
            }
        }
        if (stop_.load()) return;
        seen = generation_.load(std::memory_order_acquire);
        (*job_)(ith, n_threads_);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
    if (n_threads_ == 1) {
        fn(0, 1);
        return;
    }
    job_ = &fn;
    pending_.store(n_threads_ - 1, std::memory_order_relaxed);
    {
        // Publishing under the mutex closes the race with a worker about to sleep.
        std::lock_guard<std::mutex> lk(mu_);
        generation_.fetch_add(1, std::memory_order_acq_rel);
    }
    cv_.notify_all();
    fn(0, n_threads_);
    for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin) {
        if (spin < 4096)
            cpu_relax();
        else
            std::this_thread::yield();  // a worker may be waiting for this core
    }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    run([&](int ith, int nth) {
        const int64_t chunk = (n + nth - 1) / nth;
        const int64_t b = std::min<int64_t>(n, chunk * ith);
        const int64_t e = std::min<int64_t>(n, b + chunk);
        if (b < e) fn(b, e);
    });
}

int default_thread_count() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
    return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace duan
