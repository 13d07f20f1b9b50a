// The thread pool: every index of a call runs exactly once and never twice at the same time,
// across many back-to-back calls (the decode pattern), with more threads than cores, after the
// workers have gone to sleep, and when one index is slow; parallel_tasks covers every task once.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "core/thread_pool.h"

namespace duan {
namespace {

TEST(ThreadPool, EveryIndexOnceOverManyCalls) {
    for (int threads : {1, 2, 3, 8}) {
        ThreadPool pool(threads);
        std::vector<std::atomic<int>> busy(threads);
        std::atomic<int64_t> total{0};
        for (int call = 0; call < 20000; ++call) {
            std::vector<int> hits(threads, 0);
            pool.run([&](int ith, int nth) {
                ASSERT_EQ(nth, threads);
                ASSERT_EQ(busy[ith].fetch_add(1), 0) << "index " << ith << " ran twice at once";
                ++hits[ith];
                total.fetch_add(1);
                busy[ith].fetch_sub(1);
            });
            for (int i = 0; i < threads; ++i) ASSERT_EQ(hits[i], 1) << "call " << call;
        }
        EXPECT_EQ(total.load(), 20000 * threads);
    }
}

TEST(ThreadPool, WakesSleepingWorkers) {
    ThreadPool pool(3);
    for (int round = 0; round < 5; ++round) {
        // Longer than the spin: the workers are asleep when the call comes.
        std::this_thread::sleep_for(std::chrono::microseconds(4 * ThreadPool::kSpinMicros));
        std::atomic<int> n{0};
        pool.run([&](int, int) { n.fetch_add(1); });
        EXPECT_EQ(n.load(), 3);
    }
}

TEST(ThreadPool, SlowIndexDoesNotLoseWork) {
    ThreadPool pool(4);
    std::vector<int> out(4, 0);
    pool.run([&](int ith, int) {
        if (ith == 1) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        out[ith] = ith + 1;
    });
    EXPECT_EQ(out, (std::vector<int>{1, 2, 3, 4}));
}

TEST(ThreadPool, ParallelTasksAndForCoverEverything) {
    for (int threads : {1, 2, 5}) {
        ThreadPool pool(threads);
        for (int64_t n : {0, 1, 2, 13, 1000}) {
            std::vector<std::atomic<int>> hit(static_cast<size_t>(n));
            pool.parallel_tasks(n, [&](int64_t t, int ith) {
                ASSERT_GE(ith, 0);
                ASSERT_LT(ith, threads);
                hit[t].fetch_add(1);
            });
            for (int64_t t = 0; t < n; ++t) ASSERT_EQ(hit[t].load(), 1) << n << " " << t;
            std::vector<std::atomic<int>> hit2(static_cast<size_t>(n));
            pool.parallel_for(n, [&](int64_t b, int64_t e) {
                for (int64_t t = b; t < e; ++t) hit2[t].fetch_add(1);
            });
            for (int64_t t = 0; t < n; ++t) ASSERT_EQ(hit2[t].load(), 1) << n << " " << t;
        }
    }
}

}  // namespace
}  // namespace duan
