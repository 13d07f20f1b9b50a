// A fixed pool of worker threads for data-parallel kernels on 2–8 cores, built for the latency of
// decode (a token issues ~10 pool calls per layer, each a few microseconds of work). The calling
// thread takes part, so a pool of n threads starts n-1 OS threads: never oversubscription.
//
// Latency: a call is published with one atomic store; idle workers spin on it (with pause) for
// about kSpinMicros, then sleep on a condition variable (woken only when someone sleeps). The
// indices of a call are claimed from an atomic counter by whichever thread is free first, the
// caller included: a worker that is slow to wake or preempted by another process does not stall
// the call -- the caller runs its share. run() waits only for indices already being executed.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace duan {

class ThreadPool {
  public:
    explicit ThreadPool(int n_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return n_threads_; }

    // Runs fn(ith, nth) for every ith in [0, nth), nth = size(), and returns when all are done.
    // The split of the work is the caller's (a kernel cuts its rows or tiles by ith/nth). Each ith
    // runs exactly once and never concurrently with another call of the same ith, so per-ith
    // scratch (scratch[ith]) is safe; which OS thread runs it is not fixed.
    void run(const std::function<void(int ith, int nth)>& fn);

    // Convenience: splits [0, n) into contiguous chunks, one per index.
    void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn);

    // fn(task, ith) for every task in [0, n_tasks), claimed one at a time from an atomic counter
    // (dynamic balance for uneven tasks); ith as in run(), for per-thread scratch.
    void parallel_tasks(int64_t n_tasks, const std::function<void(int64_t task, int ith)>& fn);

    // How long an idle worker spins before it sleeps.
    static constexpr int kSpinMicros = 100;

  private:
    using Job = std::function<void(int, int)>;
    void worker();
    // Claims and runs indices of the current call until none is left; returns the generation seen.
    uint32_t work(uint64_t first_claim);

    int n_threads_;
    std::vector<std::thread> threads_;
    // generation (high 32 bits) and the next index to claim (low 32 bits) of the current call.
    alignas(64) std::atomic<uint64_t> state_{0};
    alignas(64) std::atomic<int> done_{0};  // indices of the current call finished
    std::atomic<const Job*> job_{nullptr};
    alignas(64) std::atomic<int> sleepers_{0};
    std::atomic<bool> stop_{false};
    std::mutex mu_;
    std::condition_variable cv_;
};

// Default thread count: physical cores the process may use.
int default_thread_count();

}  // namespace duan
