#include "hybrid/privacy.h"

#include <cctype>

#include "core/error.h"

namespace duan::hybrid {

namespace {

std::regex compile(const std::string& name, const std::string& re) {
    try {
        return std::regex(re, std::regex::ECMAScript | std::regex::optimize);
    } catch (const std::regex_error& e) {
        fail("PII pattern '", name, "': invalid regular expression: ", e.what());
    }
}

bool alnum(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0;
}
bool alpha(char c) {
    return std::isalpha(static_cast<unsigned char>(c)) != 0;
}
bool digit(char c) {
    return c >= '0' && c <= '9';
}
bool local_char(char c) {
    return alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}
bool domain_char(char c) {
    return alnum(c) || c == '.' || c == '-';
}
bool run_char(char c) {
    return digit(c) || c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '+' ||
           c == 'X' || c == 'x';
}

// name@domain.tld with a TLD of 2+ letters. Linear: '@' is in neither character class, so the
// scans around different '@'s do not overlap.
bool has_email(const std::string& t) {
    for (size_t at = t.find('@'); at != std::string::npos; at = t.find('@', at + 1)) {
        if (at == 0 || !local_char(t[at - 1])) continue;
        size_t r = at + 1;
        while (r < t.size() && domain_char(t[r])) ++r;
        std::string_view dom(t.data() + at + 1, r - at - 1);
        while (!dom.empty() && (dom.back() == '.' || dom.back() == '-')) dom.remove_suffix(1);
        size_t dot = dom.rfind('.');
        if (dot == std::string_view::npos || dot == 0) continue;
        std::string_view tld = dom.substr(dot + 1);
        if (tld.size() < 2) continue;
        bool ok = true;
        for (char c : tld) ok = ok && alpha(c);
        if (ok) return true;
    }
    return false;
}

}  // namespace

PiiRules::PiiRules() {
    auto num = [&](const char* name, const char* re) {
        numeric_.push_back({name, compile(name, re)});
    };
    // Most specific first, so the reported name is the most telling one.
    num("ssn", R"(\b\d{3}-\d{2}-\d{4}\b)");
    num("id_cn", R"(\b\d{17}[\dXx]\b)");
    num("card_number", R"(\b\d{4}[ -]?\d{4}[ -]?\d{4}[ -]?\d{4}\b)");
    num("phone_cn_mobile", R"(\b1[3-9]\d{9}\b)");
    // +44 20 7946 0958, (555) 123-4567, 555-123-4567, 555.123.4567, +8613812345678
    num("phone", R"((\+\d{1,3}[ .-]?)?(\(\d{2,4}\)[ .-]?|\b\d{2,4}[ .-])\d{3,4}[ .-]\d{4}\b)");
    num("phone", R"(\+\d{1,3}[ .-]?\d{6,12}\b)");
}

PiiRules PiiRules::none() {
    PiiRules r;
    r.defaults_ = false;
    r.numeric_.clear();
    return r;
}

void PiiRules::add(const std::string& name, const std::string& regex) {
    rules_.push_back({name, compile(name, regex)});
}

PiiRules PiiRules::from_json(const nlohmann::json& j) {
    if (!j.is_object()) fail("policy: \"pii\" must be an object");
    for (const auto& [k, v] : j.items())
        if (k != "use_defaults" && k != "patterns") fail("policy: unknown key \"pii.", k, "\"");
    if (j.contains("use_defaults") && !j["use_defaults"].is_boolean())
        fail("policy: \"pii.use_defaults\" must be a boolean");
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
    using It = std::string::const_iterator;
    auto search = [&](It b, It e, const std::regex& re) {
        auto flags = b == text.begin() ? std::regex_constants::match_default
                                       : std::regex_constants::match_prev_avail;  // real \b
        return std::regex_search(b, e, re, flags);
    };
    if (defaults_ && has_email(text)) return "email";
    if (!numeric_.empty()) {
        constexpr size_t kMaxRun = 256;
        size_t i = 0;
        while (i < text.size()) {
            if (!digit(text[i]) && text[i] != '+' && text[i] != '(') {
                ++i;
                continue;
            }
            size_t j = i, digits = 0;
            while (j < text.size() && run_char(text[j])) digits += digit(text[j++]);
            if (digits >= 7) {
                if (j - i > kMaxRun) return "long_number";
                for (const auto& r : numeric_)
                    if (search(text.begin() + static_cast<std::ptrdiff_t>(i),
                               text.begin() + static_cast<std::ptrdiff_t>(j), r.re))
                        return r.name;
            }
            i = std::max(j, i + 1);
        }
    }
    constexpr size_t kWindow = 1024, kOverlap = 256;
    for (const auto& r : rules_) {
        for (size_t pos = 0;; pos += kWindow - kOverlap) {
            const size_t len = std::min(kWindow, text.size() - pos);
            auto b = text.begin() + static_cast<std::ptrdiff_t>(pos);
            if (search(b, b + static_cast<std::ptrdiff_t>(len), r.re)) return r.name;
            if (pos + len >= text.size()) break;
        }
    }
    return std::nullopt;
}

}  // namespace duan::hybrid
