#include "plan/budget.h"

#include <cctype>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "plan/memory.h"

namespace duan::plan {

Budget app_budget(const Device& d, const Catalog& c, const BudgetOptions& o) {
    Budget b;
    if (o.bytes > 0) {
        b.bytes = o.bytes;
        b.rule = "--budget " + gb(o.bytes);
        b.why = "set on the command line";
        return b;
    }
    const std::string os = o.os.empty() ? d.os : o.os;
    const OsRule& r = c.rule(os);
    const double f = o.fraction.value_or(r.fraction);
    if (!(f > 0 && f <= 1)) fail("budget fraction ", f, " must be in (0, 1]");
    b.bytes = static_cast<uint64_t>(static_cast<double>(d.memory_bytes) * f);
    char buf[128];
    std::snprintf(buf, sizeof buf, "%s: %.0f%% of %s", os.c_str(), f * 100,
                  gb(d.memory_bytes).c_str());
    b.rule = buf;
    b.why = o.fraction ? "--budget-fraction" : r.why;
    // On the machine itself, what is free right now also bounds it.
    if (d.available_bytes > 0 && d.available_bytes < b.bytes) {
        b.bytes = d.available_bytes;
        b.rule += ", capped by MemAvailable " + gb(d.available_bytes);
    }
    return b;
}

uint64_t parse_bytes(const std::string& text) {
    size_t i = 0;
    double v = 0;
    try {
        v = std::stod(text, &i);
    } catch (...) {
        fail("'", text, "' is not a size (use e.g. 8G, 7.5GiB, 512M or a byte count)");
    }
    std::string unit;
    for (; i < text.size(); ++i)
        if (!std::isspace(static_cast<unsigned char>(text[i])))
            unit += static_cast<char>(std::toupper(static_cast<unsigned char>(text[i])));
    double mul = 1;
    if (unit.empty() || unit == "B")
        mul = 1;
    else if (unit == "K" || unit == "KB")
        mul = 1e3;
    else if (unit == "M" || unit == "MB")
        mul = 1e6;
    else if (unit == "G" || unit == "GB")
        mul = 1e9;
    else if (unit == "T" || unit == "TB")
        mul = 1e12;
    else if (unit == "KIB")
        mul = 1024.0;
    else if (unit == "MIB")
        mul = 1024.0 * 1024;
    else if (unit == "GIB")
        mul = 1024.0 * 1024 * 1024;
    else
        fail("'", text, "': unknown size unit '", unit, "' (use B, K, M, G, T, KiB, MiB, GiB)");
    const double bytes = v * mul;
    if (!(bytes >= 0) || bytes > 1e18) fail("'", text, "' is not a plausible size");
    return static_cast<uint64_t>(std::llround(bytes));
}

}  // namespace duan::plan
