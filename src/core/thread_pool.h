// A fixed pool of worker threads for data-parallel kernels on 2–8 cores. The calling thread takes
// part as worker 0, so a pool of n threads starts n-1 OS threads; there is never oversubscription.
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

    // Runs fn(ith, nth) on every thread (ith in [0, nth)) and returns when all are done.
    // The work split is the caller's: a kernel cuts its rows or tiles by ith/nth.
    void run(const std::function<void(int ith, int nth)>& fn);

    // Convenience: splits [0, n) into contiguous chunks, one per thread.
    void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn);

private:
    void worker(int ith);

    int n_threads_;
    std::vector<std::thread> threads_;
    // A job is published by bumping generation_; workers spin on it briefly (decode issues a job
    // every few microseconds), then sleep on the condition variable.
    std::mutex mu_;
    std::condition_variable cv_;
    const std::function<void(int, int)>* job_ = nullptr;
    std::atomic<uint64_t> generation_{0};
    std::atomic<int> pending_{0};
    std::atomic<bool> stop_{false};
};

// Default thread count: physical cores the process may use.
int default_thread_count();

}  // namespace duan
