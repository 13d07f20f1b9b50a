// A small backtracking regex engine over Unicode code points, for the pre-tokenizer patterns of
// byte-level BPE vocabularies (see pretokenizer.cpp). Compiled once per tokenizer.
//
// Supported syntax (exactly what those patterns use): alternation `|`, groups `(...)`, `(?:...)`,
// case-insensitive groups `(?i:...)` (ASCII letters only), lookahead `(?=...)` / `(?!...)`,
// character classes `[...]` / `[^...]` with ranges and escapes, `.`, anchors `^` `$`, quantifiers
// `? * + {m} {m,} {m,n}` (greedy, or lazy with a trailing `?`), escapes \p{..} \P{..} (general
// categories L Lu Ll Lt Lm Lo M Mn Mc Me N Nd Nl No P.. S.. Z.. C..), \s \S (White_Space),
// \d \D (ASCII digits, as the reference's ECMAScript regex), \r \n \t \f \v and escaped
// punctuation. Semantics are leftmost-first (Perl/ECMAScript). Patterns come from this code base,
// never from user input; the matcher uses an explicit stack, so long inputs cannot overflow the
// call stack.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace duan::tok {

// Per code point properties the matcher tests: the general category (unicode::Category) in the
// low 5 bits and kWhiteSpaceBit when the code point has the White_Space property.
constexpr uint8_t kWhiteSpaceBit = 0x80;
uint8_t cp_props(uint32_t cp);

class Regex {
  public:
    // Throws duan::Error naming the pattern and offset on a syntax error.
    explicit Regex(std::string_view pattern);

    // Splits every fragment (a length, in code points, of consecutive spans covering `cps`) into
    // the matches of this regex and the unmatched gaps between them, like the reference's
    // unicode_regex_split. Each fragment is matched as a whole input ($ and lookahead stop at its
    // end). `props[i]` = cp_props(cps[i]).
    std::vector<size_t> split(const std::vector<uint32_t>& cps, const std::vector<uint8_t>& props,
                              const std::vector<size_t>& fragments) const;

    const std::string& pattern() const { return pattern_; }

    struct Class {
        bool negated = false;
        uint32_t cat_mask = 0;  // bit i: unicode::Category i
        bool ws = false, not_ws = false;
        std::vector<std::pair<uint32_t, uint32_t>> ranges;  // inclusive
        uint64_t ascii[2] = {0, 0};                         // final answer for cp < 128
        bool test_slow(uint32_t cp, uint8_t props) const;
        bool test(uint32_t cp, uint8_t props) const {
            if (cp < 128) return (ascii[cp >> 6] >> (cp & 63)) & 1;
            return test_slow(cp, props);
        }
    };
    enum class Op : uint8_t { kClass, kSplit, kJmp, kLook, kBol, kEol, kMatch };
    struct Inst {
        Op op;
        bool neg = false;  // kLook: negative lookahead
        int x = 0, y = 0;  // kClass: class index; kSplit: preferred x, else y; kJmp/kLook: targets
    };

  private:
    std::string pattern_;
    std::vector<Class> classes_;
    std::vector<Inst> prog_;

    struct Input {
        const uint32_t* cps;
        const uint8_t* props;
        size_t begin, end;
    };
    struct Frame {
        int pc;
        uint32_t pos;
    };
    // Visited (instruction, position) states of the current search, so each is explored at most
    // once: a state reached again can only fail again (there are no captures or backreferences),
    // which keeps a search linear in the fragment length instead of quadratic (e.g. \s+$ over a
    // long run of spaces that does not end the fragment). Lookahead bodies are not memoized.
    struct Memo {
        std::vector<uint64_t> bits;     // prog size x (fragment length + 1)
        std::vector<uint32_t> touched;  // words to clear after a successful match
        size_t stride = 0;              // fragment length + 1
        size_t begin = 0;               // fragment start
        bool active = false;
        void reset_touched() {
            for (uint32_t w : touched) bits[w] = 0;
            touched.clear();
        }
    };
    bool run(const Input& in, int pc, size_t pos, size_t* match_end, std::vector<Frame>& stack,
             Memo* memo) const;
    friend class RegexCompiler;
};

}  // namespace duan::tok
