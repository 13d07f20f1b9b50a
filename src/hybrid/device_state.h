// Device state the router weighs: battery level, charging, temperature. Read from Linux sysfs
// (/sys/class/power_supply, /sys/class/thermal); every value can be overridden (tests, or devices
// whose sysfs lies). Values that cannot be read stay unknown and never trigger a rule.
#pragma once
#include <mutex>
#include <optional>
#include <string>

namespace duan::hybrid {

struct DeviceState {
    std::optional<double> battery_pct;  // 0..100
    std::optional<bool> charging;
    std::optional<double> temp_c;  // hottest thermal zone
};

struct DeviceOverrides {
    std::optional<double> battery_pct;
    std::optional<bool> charging;
    std::optional<double> temp_c;
};

class DeviceProbe {
  public:
    // sysfs_root: "/sys" normally; tests point it at a fake tree.
    explicit DeviceProbe(std::string sysfs_root = "/sys", DeviceOverrides ov = {});
    DeviceState read() const;
    void set_overrides(DeviceOverrides ov);

  private:
    std::string root_;
    mutable std::mutex mu_;
    DeviceOverrides ov_;
};

}  // namespace duan::hybrid
