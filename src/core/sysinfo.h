// Facts about the machine and this process for benchmarks and planning: peak resident memory, the
// CPU's name, and the memory read bandwidth (what bounds decode speed: every generated token reads
// all the weights once).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace duan::sysinfo {

// Highest resident set size of this process so far (VmHWM; mapped model pages that were touched
// count), in bytes; 0 if unknown.
uint64_t peak_rss_bytes();
// Current resident set size in bytes; 0 if unknown.
uint64_t current_rss_bytes();
// Physical memory of the machine in bytes; 0 if unknown.
uint64_t total_ram_bytes();
// "AMD EPYC 9654 96-Core Processor" etc. from /proc/cpuinfo; "unknown" if not found.
std::string cpu_model();

struct Bandwidth {
    double gb_per_s = 0;  // best pass, 1e9 bytes per second
    size_t buffer_bytes = 0;
    int n_threads = 0;
    int passes = 0;
};

// Read bandwidth: n_threads threads each sum their slice of a buffer much larger than the caches
// (a wide, unrolled read loop), timed per pass; the best of `passes` is returned.
Bandwidth measure_read_bandwidth(int n_threads, size_t buffer_bytes = size_t{256} << 20,
                                 int passes = 5);

}  // namespace duan::sysinfo
