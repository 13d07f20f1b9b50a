#include "plan/device.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/isa.h"
#include "plan/probe.h"

namespace duan::plan {

namespace {
std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

double num(const nlohmann::json& j, const char* key, const std::string& where, bool required) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
        if (required) fail(where, ": missing number '", key, "'");
        return 0;
    }
    if (!it->is_number()) fail(where, ": '", key, "' must be a number");
    const double v = it->get<double>();
    if (!(v >= 0) || v > 1e7) fail(where, ": '", key, "' = ", v, " is out of range");
    return v;
}

std::string str(const nlohmann::json& j, const char* key, const std::string& where, bool required) {
    auto it = j.find(key);
    if (it == j.end()) {
        if (required) fail(where, ": missing string '", key, "'");
        return "";
    }
    if (!it->is_string()) fail(where, ": '", key, "' must be a string");
    return it->get<std::string>();
}

// Fields of a chip entry, or a product entry's overrides of its chip.
void read_fields(Device& d, const nlohmann::json& j, const std::string& where, bool required) {
    auto set = [&](const char* key, double& out) {
        if (required || j.contains(key)) out = num(j, key, where, required);
    };
    auto set_int = [&](const char* key, int& out) {
        if (required || j.contains(key)) out = static_cast<int>(num(j, key, where, required));
    };
    set("int8_tops", d.int8_tops);
    set("cpu_int8_gops", d.cpu_int8_gops);
    set("mem_bw_gbs", d.mem_bw_gbs);
    set("cpu_ghz", d.cpu_ghz);
    set_int("cpu_big", d.cpu_big);
    set_int("cpu_little", d.cpu_little);
    if (required || j.contains("memory_gb"))
        d.memory_bytes = static_cast<uint64_t>(num(j, "memory_gb", where, required) * 1e9);
    if (j.contains("os")) d.os = str(j, "os", where, true);
    if (j.contains("kind")) d.kind = str(j, "kind", where, true);
    if (j.contains("source")) d.source = str(j, "source", where, true);
    if (auto it = j.find("estimated"); it != j.end()) {
        if (!it->is_array()) fail(where, ": 'estimated' must be an array of field names");
        for (const auto& e : *it) {
            if (!e.is_string()) fail(where, ": 'estimated' must be an array of field names");
            d.estimated.push_back(e.get<std::string>());
        }
    }
}
}  // namespace

bool Device::is_estimated(const std::string& field) const {
    return std::find(estimated.begin(), estimated.end(), field) != estimated.end();
}

Catalog parse_catalog(const std::string& text, const std::string& where) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        fail(where, ": not valid JSON: ", e.what());
    }
    if (!j.is_object()) fail(where, ": the catalog must be a JSON object");
    Catalog c;
    c.path = where;
    if (auto it = j.find("os_rules"); it != j.end() && it->is_object()) {
        for (const auto& [os, r] : it->items()) {
            const std::string w = where + ": os_rules." + os;
            if (!r.is_object()) fail(w, " must be an object");
            OsRule rule;
            rule.os = os;
            rule.fraction = num(r, "fraction", w, true);
            if (!(rule.fraction > 0 && rule.fraction <= 1)) fail(w, ": fraction must be in (0, 1]");
            rule.why = str(r, "why", w, false);
            c.os_rules[os] = rule;
        }
    }
    auto list = [&](const char* key) -> const nlohmann::json& {
        static const nlohmann::json empty = nlohmann::json::array();
        auto it = j.find(key);
        if (it == j.end()) return empty;
        if (!it->is_array()) fail(where, ": '", key, "' must be an array");
        return *it;
    };
    for (const auto& e : list("chips")) {
        if (!e.is_object()) fail(where, ": chips: every entry must be an object");
        Device d;
        d.id = lower(str(e, "id", where + ": chips[]", true));
        const std::string w = where + ": chip '" + d.id + "'";
        d.name = str(e, "name", w, true);
        d.kind = "soc";
        read_fields(d, e, w, true);
        if (d.os.empty()) fail(w, ": missing string 'os'");
        c.devices.push_back(std::move(d));
    }
    for (const auto& e : list("devices")) {
        if (!e.is_object()) fail(where, ": devices: every entry must be an object");
        const std::string id = lower(str(e, "id", where + ": devices[]", true));
        const std::string w = where + ": device '" + id + "'";
        const std::string chip = lower(str(e, "chip", w, true));
        auto it = std::find_if(c.devices.begin(), c.devices.end(),
                               [&](const Device& d) { return d.id == chip && d.chip.empty(); });
        if (it == c.devices.end()) fail(w, ": unknown chip '", chip, "'");
        Device d = *it;  // inherit the chip's figures, then apply the product's
        d.id = id;
        d.chip = chip;
        d.kind = "device";
        d.name = str(e, "name", w, true);
        d.source = it->source;
        std::vector<std::string> chip_est = d.estimated;
        d.estimated.clear();
        read_fields(d, e, w, false);
        for (auto& f : chip_est) d.estimated.push_back(f);
        c.devices.push_back(std::move(d));
    }
    for (const auto& d : c.devices)
        if (!c.os_rules.count(d.os))
            fail(where, ": '", d.id, "' has os '", d.os, "', which os_rules does not define");
    std::vector<std::string> ids;
    for (const auto& d : c.devices) ids.push_back(d.id);
    std::sort(ids.begin(), ids.end());
    if (auto dup = std::adjacent_find(ids.begin(), ids.end()); dup != ids.end())
        fail(where, ": id '", *dup, "' appears twice");
    return c;
}

Catalog load_catalog(const std::string& path) {
    namespace fs = std::filesystem;
    std::vector<fs::path> tries;
    if (!path.empty()) {
        tries.push_back(path);
    } else {
        if (const char* env = std::getenv("DUAN_DEVICES"); env && *env) tries.push_back(env);
        tries.push_back(fs::path("data") / "devices.json");
        std::error_code ec;
        fs::path exe = fs::read_symlink("/proc/self/exe", ec);
        if (!ec) {
            fs::path dir = exe.parent_path();
            for (int up = 0; up < 4 && !dir.empty(); ++up, dir = dir.parent_path()) {
                tries.push_back(dir / "data" / "devices.json");
                tries.push_back(dir / "share" / "duan" / "devices.json");
            }
        }
    }
    for (const auto& p : tries) {
        std::ifstream in(p, std::ios::binary);
        if (!in) continue;
        std::ostringstream ss;
        ss << in.rdbuf();
        return parse_catalog(ss.str(), p.string());
    }
    std::string list;
    for (const auto& p : tries) list += "\n  " + p.string();
    fail("device catalog not found (use --catalog FILE or DUAN_DEVICES); tried:", list);
}

Device Catalog::find(const std::string& id) const {
    const std::string want = lower(id);
    if (want == "this") {
        Device d = probe_this_device();
        return d;
    }
    for (const auto& d : devices)
        if (d.id == want) return d;
    std::string known;
    for (const auto& d : devices) known += (known.empty() ? "" : ", ") + d.id;
    fail("unknown device '", id, "' (", path, " has: this, ", known, ")");
}

const OsRule& Catalog::rule(const std::string& os) const {
    auto it = os_rules.find(os);
    if (it == os_rules.end()) {
        std::string known;
        for (const auto& [k, v] : os_rules) known += (known.empty() ? "" : ", ") + k;
        fail("unknown OS rule '", os, "' (", path, " has: ", known, ")");
    }
    return it->second;
}

namespace {
uint64_t meminfo_kb(const char* key) {
    std::ifstream in("/proc/meminfo");
    std::string line;
    const std::string k = std::string(key) + ":";
    while (std::getline(in, line))
        if (line.rfind(k, 0) == 0) return std::stoull(line.substr(k.size()));
    return 0;
}
}  // namespace

Device probe_this_device() {
    Device d;
    d.id = "this";
    d.kind = "host";
    d.os = "linux";
    d.source = "measured";
    const int threads = default_thread_count();
    d.name = cpu_model_name() + " (" + std::to_string(threads) + " threads)";
    d.cpu_big = threads;
    d.cpu_ghz = cpu_max_ghz();
    d.isa = kernels::isa_name(kernels::active_isa());
    d.memory_bytes = meminfo_kb("MemTotal") * 1024;
    if (d.memory_bytes == 0)
        d.memory_bytes = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE);
    d.available_bytes = meminfo_kb("MemAvailable") * 1024;
    ThreadPool pool(threads);
    d.mem_bw_gbs = measure_read_bandwidth(pool) / 1e9;
    // What the kernels reach on a q8_0 matmul of a 32-row batch (shown next to the nominal peak).
    const MatmulRate g = measure_matmul(DType::Q8_0, 32, 2048, 1024, pool, 0.15);
    d.gemm_gops = g.ops_per_s() / 1e9;
    d.cpu_int8_gops = nominal_cpu_int8_gops(threads);
    d.int8_tops = d.cpu_int8_gops / 1e3;  // no accelerator: the CPU's nominal peak
    d.estimated = {"int8_tops", "cpu_int8_gops"};
    return d;
}

}  // namespace duan::plan
