// PII rules: a request whose text matches any rule is treated as private and never leaves the
// device. Defaults: e-mail addresses, phone numbers (international, North American, Chinese
// mobile), US social security numbers, Chinese resident ID numbers, payment-card numbers. A policy
// file can add regex patterns or drop the defaults.
//
// Cost is linear in the text: e-mails are found by a scanner around each '@'; the number rules are
// regexes run only on short "numeric runs" (digits with spaces, - . ( ) + X between them; a run
// longer than 256 bytes counts as PII by itself, "long_number"); custom patterns are run over
// 1 KiB windows overlapping by 256 bytes (std::regex recursion and time stay bounded — start a
// custom pattern with a literal, not a greedy class, to keep it fast).
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <string>
#include <vector>

namespace duan::hybrid {

class PiiRules {
  public:
    PiiRules();  // the defaults
    static PiiRules none();
    // {"use_defaults": true, "patterns": {"employee_id": "EMP-\\d{6}", ...}}. Throws duan::Error
    // naming the pattern when a regex does not compile.
    static PiiRules from_json(const nlohmann::json& j);
    void add(const std::string& name, const std::string& regex);

    // The name of the first rule that matches, nullopt if none.
    std::optional<std::string> match(const std::string& text) const;
    size_t size() const { return rules_.size() + (defaults_ ? 1 : 0); }

  private:
    struct Rule {
        std::string name;
        std::regex re;
    };
    bool defaults_ = true;
    std::vector<Rule> numeric_;  // run on numeric runs only
    std::vector<Rule> rules_;    // custom: run on windows of the whole text
};

}  // namespace duan::hybrid
