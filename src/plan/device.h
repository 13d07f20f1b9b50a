// The device catalog (data/devices.json): what each chip or product offers for running a model —
// accelerator INT8 TOPS, memory size and bandwidth, CPU cores — and the per-OS rule for how much of
// that memory one app may use. `this` is the machine duan runs on, probed at run time.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace duan::plan {

struct OsRule {
    std::string os;         // "android", "ios", "ios-entitled", "ipados", "macos", "linux", "gpu"
    double fraction = 0.5;  // of physical memory one app may hold
    std::string why;
};

struct Device {
    std::string id;             // "xiaomi-14", "a17-pro", "this"
    std::string name;           // human name
    std::string kind;           // gpu | soc | sbc | device | host
    std::string chip;           // chip id for products ("" for chips)
    std::string os;             // key into the OS rules
    double int8_tops = 0;       // headline accelerator INT8 (dense), 10^12 ops/s
    double cpu_int8_gops = 0;   // CPU int8 peak, 10^9 ops/s (0 for GPUs)
    uint64_t memory_bytes = 0;  // physical memory (device memory for GPUs)
    double mem_bw_gbs = 0;      // peak memory bandwidth, 10^9 bytes/s
    int cpu_big = 0, cpu_little = 0;
    double cpu_ghz = 0;
    std::string isa;                     // "this" only: the kernels' ISA level
    double gemm_gops = 0;                // "this" only: measured q8_0 matmul throughput
    uint64_t available_bytes = 0;        // "this" only: MemAvailable
    std::string source;                  // where the figures come from (docs/DEVICES.md)
    std::vector<std::string> estimated;  // fields that are estimates, not vendor figures
    bool is_estimated(const std::string& field) const;
};

struct Catalog {
    std::string path;
    std::map<std::string, OsRule> os_rules;
    std::vector<Device> devices;  // chips first, then products (products resolved against chips)

    // By id (case-insensitive); "this" probes the running machine. Throws listing the known ids.
    Device find(const std::string& id) const;
    const OsRule& rule(const std::string& os) const;  // throws naming the OS
};

// Parses a catalog. `where` names the file in errors (bad JSON, missing fields, unknown chip).
Catalog parse_catalog(const std::string& json_text, const std::string& where);
// Loads `path`, or when empty: $DUAN_DEVICES, then data/devices.json next to the working directory
// or up to three folders above the executable.
Catalog load_catalog(const std::string& path = "");

// The running machine: CPU count, ISA, RAM and MemAvailable from /proc, measured read bandwidth
// and int8 GEMM throughput (short measurements, ~0.5 s in all; see probe.h).
Device probe_this_device();

}  // namespace duan::plan
