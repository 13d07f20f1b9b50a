#include "hybrid/device_state.h"

#include <filesystem>
#include <fstream>

namespace duan::hybrid {

namespace fs = std::filesystem;

namespace {
// First line of a small sysfs file ("" if unreadable); sysfs values are short, cap at 256 bytes.
std::string read_small(const fs::path& p) {
    std::ifstream f(p);
    if (!f) return "";
    std::string s(256, '\0');
    f.read(s.data(), static_cast<std::streamsize>(s.size()));
    s.resize(static_cast<size_t>(f.gcount()));
    if (auto nl = s.find('\n'); nl != std::string::npos) s.resize(nl);
    return s;
}

std::optional<double> to_num(const std::string& s) {
    try {
        size_t used = 0;
        double v = std::stod(s, &used);
        if (used == 0) return std::nullopt;
        return v;
    } catch (...) {
        return std::nullopt;
    }
}
}  // namespace

DeviceProbe::DeviceProbe(std::string sysfs_root, DeviceOverrides ov)
    : root_(std::move(sysfs_root)), ov_(ov) {}

void DeviceProbe::set_overrides(DeviceOverrides ov) {
    std::lock_guard<std::mutex> lk(mu_);
    ov_ = ov;
}

DeviceState DeviceProbe::read() const {
    DeviceState st;
    std::error_code ec;
    const fs::path ps = fs::path(root_) / "class/power_supply";
    for (const auto& d : fs::directory_iterator(ps, ec)) {
        if (read_small(d.path() / "type") != "Battery") continue;
        if (auto cap = to_num(read_small(d.path() / "capacity"))) st.battery_pct = *cap;
        std::string status = read_small(d.path() / "status");
        if (!status.empty()) st.charging = status == "Charging" || status == "Full";
        break;
    }
    const fs::path th = fs::path(root_) / "class/thermal";
    for (const auto& d : fs::directory_iterator(th, ec)) {
        if (d.path().filename().string().rfind("thermal_zone", 0) != 0) continue;
        if (auto milli = to_num(read_small(d.path() / "temp"))) {
            double c = *milli / 1000.0;  // sysfs reports millidegrees Celsius
            if (!st.temp_c || c > *st.temp_c) st.temp_c = c;
        }
    }
    std::lock_guard<std::mutex> lk(mu_);
    if (ov_.battery_pct) st.battery_pct = ov_.battery_pct;
    if (ov_.charging) st.charging = ov_.charging;
    if (ov_.temp_c) st.temp_c = ov_.temp_c;
    return st;
}

}  // namespace duan::hybrid
