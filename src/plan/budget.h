// App memory budget: how much of a device's RAM one app may hold, by the OS's rule
// (data/devices.json "os_rules"; docs/PLANNING.md explains each), or an explicit --budget.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "plan/device.h"

namespace duan::plan {

struct BudgetOptions {
    uint64_t bytes = 0;              // --budget: overrides everything when > 0
    std::optional<double> fraction;  // --budget-fraction: overrides the OS rule's fraction
    std::string os;                  // --os: use this OS rule instead of the device's
};

struct Budget {
    uint64_t bytes = 0;
    std::string rule;  // "android 1/2 of 12.00 GB", "--budget", "MemAvailable"
    std::string why;
};

Budget app_budget(const Device& d, const Catalog& c, const BudgetOptions& o = {});

// Parses "8G", "8GB", "7.5GiB", "512M", "123456" (bytes). Throws naming the text.
uint64_t parse_bytes(const std::string& text);

}  // namespace duan::plan
