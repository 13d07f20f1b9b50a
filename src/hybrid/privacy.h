// PII rules: a request whose text matches any pattern is treated as private and never leaves the
// device. The defaults catch e-mail addresses, phone numbers (international / North American /
// Chinese mobile), US social security numbers, Chinese resident ID numbers and payment-card
// numbers; a policy file can add patterns or replace the defaults.
#pragma once
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace duan::hybrid {

class PiiRules {
public:
    PiiRules();  // the defaults
    static PiiRules none();
    // {"use_defaults": true, "patterns": {"employee_id": "EMP-\\d{6}", ...}}. Throws duan::Error
    // naming the pattern when a regex does not compile.
    static PiiRules from_json(const nlohmann::json& j);
    void add(const std::string& name, const std::string& regex);

    // The name of the first rule that matches, nullopt if none. The text is scanned in windows of
    // 2 KiB (overlapping by 256 bytes) so that std::regex's recursion stays bounded on any input.
    std::optional<std::string> match(const std::string& text) const;
    size_t size() const { return rules_.size(); }

private:
    struct Rule {
        std::string name;
        std::regex re;
    };
    std::vector<Rule> rules_;
};

}  // namespace duan::hybrid
