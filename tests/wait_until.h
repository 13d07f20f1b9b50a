// Tests that depend on another thread wait on its state with this, never on a fixed sleep (fixed
// sleeps raced under qemu and ASan, CI stops 8 and 9).
#pragma once
#include <chrono>
#include <thread>

namespace duan::test {

// Polls `cond` every millisecond until it holds or `limit` has passed; returns whether it held.
template <class F>
bool wait_until(F cond, std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!cond()) {
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

}  // namespace duan::test
