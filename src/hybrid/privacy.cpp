#include "hybrid/privacy.h"

#include "core/error.h"

namespace duan::hybrid {

PiiRules::PiiRules() {
    add("email", R"([A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})");
    // +44 20 7946 0958, (555) 123-4567, 555-123-4567, 555.123.4567
    add("phone", R"((\+\d{1,3}[ .-]?)?(\(\d{2,4}\)[ .-]?|\b\d{3}[ .-])\d{3,4}[ .-]\d{4}\b)");
    add("phone", R"(\+\d{1,3}[ .-]?\d{6,12}\b)");
    add("phone_cn_mobile", R"(\b1[3-9]\d{9}\b)");
    add("ssn", R"(\b\d{3}-\d{2}-\d{4}\b)");
    add("id_cn", R"(\b\d{17}[\dXx]\b)");
    add("card_number", R"(\b\d{4}[ -]?\d{4}[ -]?\d{4}[ -]?\d{4}\b)");
}

PiiRules PiiRules::none() {
    PiiRules r;
    r.rules_.clear();
    return r;
}

void PiiRules::add(const std::string& name, const std::string& regex) {
    try {
        rules_.push_back({name, std::regex(regex, std::regex::ECMAScript | std::regex::optimize)});
    } catch (const std::regex_error& e) {
        fail("PII pattern '", name, "': invalid regular expression: ", e.what());
    }
}

PiiRules PiiRules::from_json(const nlohmann::json& j) {
    if (!j.is_object()) fail("policy: \"pii\" must be an object");
    PiiRules r = j.value("use_defaults", true) ? PiiRules() : PiiRules::none();
    if (j.contains("patterns")) {
        if (!j["patterns"].is_object()) fail("policy: \"pii.patterns\" must be an object");
        for (const auto& [name, v] : j["patterns"].items()) {
            if (!v.is_string()) fail("policy: pii.patterns.", name, " must be a string");
            r.add(name, v.get<std::string>());
        }
    }
    return r;
}

std::optional<std::string> PiiRules::match(const std::string& text) const {
    constexpr size_t kWindow = 2048, kOverlap = 256;
    for (size_t pos = 0; pos < text.size() || pos == 0; pos += kWindow - kOverlap) {
        const size_t len = std::min(kWindow, text.size() - pos);
        auto b = text.begin() + static_cast<std::ptrdiff_t>(pos);
        auto e = b + static_cast<std::ptrdiff_t>(len);
        for (const auto& r : rules_)
            if (std::regex_search(b, e, r.re)) return r.name;
        if (pos + len >= text.size()) break;
    }
    return std::nullopt;
}

}  // namespace duan::hybrid
