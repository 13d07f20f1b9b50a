#include "tokenizer/regex.h"

#include <algorithm>
#include <memory>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace duan::tok {

using unicode::Category;

uint8_t cp_props(uint32_t cp) {
    return static_cast<uint8_t>(unicode::category(cp)) |
           (unicode::is_whitespace(cp) ? kWhiteSpaceBit : 0);
}

bool Regex::Class::test_slow(uint32_t cp, uint8_t props) const {
    bool m = ((cat_mask >> (props & 0x1F)) & 1) || (ws && (props & kWhiteSpaceBit)) ||
             (not_ws && !(props & kWhiteSpaceBit));
    for (size_t i = 0; !m && i < ranges.size(); i++)
        m = cp >= ranges[i].first && cp <= ranges[i].second;
    return m != negated;
}

namespace {

constexpr uint32_t cat_bit(Category c) {
    return 1u << static_cast<uint32_t>(c);
}
constexpr uint32_t cat_span(Category a, Category b) {
    uint32_t m = 0;
    for (uint32_t i = static_cast<uint32_t>(a); i <= static_cast<uint32_t>(b); i++) m |= 1u << i;
    return m;
}

// Category mask for a \p{Name}; 0 if unknown.
uint32_t category_mask(std::string_view name) {
    struct Entry {
        const char* name;
        uint32_t mask;
    };
    static const Entry kTable[] = {
        {"L", cat_span(Category::Lu, Category::Lo)},
        {"Lu", cat_bit(Category::Lu)},
        {"Ll", cat_bit(Category::Ll)},
        {"Lt", cat_bit(Category::Lt)},
        {"Lm", cat_bit(Category::Lm)},
        {"Lo", cat_bit(Category::Lo)},
        {"M", cat_span(Category::Mn, Category::Me)},
        {"Mn", cat_bit(Category::Mn)},
        {"Mc", cat_bit(Category::Mc)},
        {"Me", cat_bit(Category::Me)},
        {"N", cat_span(Category::Nd, Category::No)},
        {"Nd", cat_bit(Category::Nd)},
        {"Nl", cat_bit(Category::Nl)},
        {"No", cat_bit(Category::No)},
        {"P", cat_span(Category::Pc, Category::Po)},
        {"Pc", cat_bit(Category::Pc)},
        {"Pd", cat_bit(Category::Pd)},
        {"Ps", cat_bit(Category::Ps)},
        {"Pe", cat_bit(Category::Pe)},
        {"Pi", cat_bit(Category::Pi)},
        {"Pf", cat_bit(Category::Pf)},
        {"Po", cat_bit(Category::Po)},
        {"S", cat_span(Category::Sm, Category::So)},
        {"Sm", cat_bit(Category::Sm)},
        {"Sc", cat_bit(Category::Sc)},
        {"Sk", cat_bit(Category::Sk)},
        {"So", cat_bit(Category::So)},
        {"Z", cat_span(Category::Zs, Category::Zp)},
        {"Zs", cat_bit(Category::Zs)},
        {"Zl", cat_bit(Category::Zl)},
        {"Zp", cat_bit(Category::Zp)},
        {"C", cat_bit(Category::Cn) | cat_span(Category::Cc, Category::Co)},
        {"Cc", cat_bit(Category::Cc)},
        {"Cf", cat_bit(Category::Cf)},
        {"Cs", cat_bit(Category::Cs)},
        {"Co", cat_bit(Category::Co)},
        {"Cn", cat_bit(Category::Cn)},
    };
    for (const auto& e : kTable)
        if (name == e.name) return e.mask;
    return 0;
}

struct Node {
    enum Kind { kEmpty, kClass, kConcat, kAlt, kRepeat, kLook, kBol, kEol } kind = kEmpty;
    std::vector<std::unique_ptr<Node>> kids;
    int cls = -1;
    int min = 0, max = -1;  // kRepeat; max -1 = unbounded
    bool greedy = true;
    bool neg = false;  // kLook
};

}  // namespace

// Recursive-descent parser (pattern nesting is shallow and fixed) plus code generator.
class RegexCompiler {
  public:
    RegexCompiler(Regex& re, std::string_view pat) : re_(re) { cps_ = unicode::decode_utf8(pat); }

    void compile() {
        auto root = parse_alt(false);
        if (pos_ != cps_.size()) error("unbalanced ')'");
        emit_node(*root);
        re_.prog_.push_back({Regex::Op::kMatch});
        for (auto& c : re_.classes_) finalize(c);
    }

  private:
    Regex& re_;
    std::vector<uint32_t> cps_;
    size_t pos_ = 0;

    [[noreturn]] void error(const char* what) const {
        fail("tokenizer regex '", re_.pattern_, "': ", what, " at code point ", pos_);
    }
    bool more() const { return pos_ < cps_.size(); }
    uint32_t peek() const { return cps_[pos_]; }
    bool eat(uint32_t c) {
        if (more() && peek() == c) {
            pos_++;
            return true;
        }
        return false;
    }

    std::unique_ptr<Node> parse_alt(bool ci) {
        auto first = parse_concat(ci);
        if (!more() || peek() != '|') return first;
        auto alt = std::make_unique<Node>();
        alt->kind = Node::kAlt;
        alt->kids.push_back(std::move(first));
        while (eat('|')) alt->kids.push_back(parse_concat(ci));
        return alt;
    }

    std::unique_ptr<Node> parse_concat(bool ci) {
        auto cat = std::make_unique<Node>();
        cat->kind = Node::kConcat;
        while (more() && peek() != '|' && peek() != ')') cat->kids.push_back(parse_repeat(ci));
        return cat;
    }

    int parse_int() {
        if (!more() || peek() < '0' || peek() > '9') error("expected a number");
        int v = 0;
        while (more() && peek() >= '0' && peek() <= '9') {
            v = v * 10 + static_cast<int>(peek() - '0');
            if (v > 1000) error("repeat count too large");
            pos_++;
        }
        return v;
    }

    std::unique_ptr<Node> parse_repeat(bool ci) {
        auto atom = parse_atom(ci);
        while (more()) {
            int mn, mx;
            const uint32_t c = peek();
            if (c == '*')
                mn = 0, mx = -1;
            else if (c == '+')
                mn = 1, mx = -1;
            else if (c == '?')
                mn = 0, mx = 1;
            else if (c == '{') {
                pos_++;
                mn = parse_int();
                mx = mn;
                if (eat(',')) mx = (more() && peek() == '}') ? -1 : parse_int();
                if (!more() || peek() != '}') error("expected '}'");
                if (mx != -1 && mx < mn) error("bad repeat range");
            } else {
                break;
            }
            pos_++;
            auto rep = std::make_unique<Node>();
            rep->kind = Node::kRepeat;
            rep->min = mn;
            rep->max = mx;
            rep->greedy = !eat('?');
            rep->kids.push_back(std::move(atom));
            atom = std::move(rep);
        }
        return atom;
    }

    std::unique_ptr<Node> class_node(Regex::Class c) {
        re_.classes_.push_back(std::move(c));
        auto n = std::make_unique<Node>();
        n->kind = Node::kClass;
        n->cls = static_cast<int>(re_.classes_.size()) - 1;
        return n;
    }

    static void add_case_variants(Regex::Class& c) {
        const auto ranges = c.ranges;
        for (auto [a, b] : ranges) {
            for (uint32_t x = std::max<uint32_t>(a, 'A'); x <= std::min<uint32_t>(b, 'Z'); x++)
                c.ranges.push_back({x + 32, x + 32});
            for (uint32_t x = std::max<uint32_t>(a, 'a'); x <= std::min<uint32_t>(b, 'z'); x++)
                c.ranges.push_back({x - 32, x - 32});
        }
    }

    // Parses an escape after '\'. Returns true and sets *lit for a literal code point; otherwise
    // adds the escape's set to `c` (which must then be used as a class) and returns false.
    bool parse_escape(Regex::Class& c, uint32_t* lit) {
        if (!more()) error("trailing backslash");
        const uint32_t e = cps_[pos_++];
        switch (e) {
            case 'r':
                *lit = '\r';
                return true;
            case 'n':
                *lit = '\n';
                return true;
            case 't':
                *lit = '\t';
                return true;
            case 'f':
                *lit = '\f';
                return true;
            case 'v':
                *lit = '\v';
                return true;
            case 's':
                c.ws = true;
                return false;
            case 'S':
                c.not_ws = true;
                return false;
            case 'd':
                c.ranges.push_back({'0', '9'});
                return false;
            case 'p':
            case 'P': {
                if (!eat('{')) error("expected '{' after \\p");
                std::string name;
                while (more() && peek() != '}' && name.size() < 16)
                    name += static_cast<char>(cps_[pos_++]);
                if (!eat('}')) error("expected '}' after \\p{");
                const uint32_t m = category_mask(name);
                if (m == 0) error("unknown Unicode category");
                c.cat_mask |=
                    e == 'p' ? m : (~m & ((1u << static_cast<int>(Category::kCount)) - 1));
                return false;
            }
            default:
                if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '0' && e <= '9'))
                    error("unsupported escape");
                *lit = e;
                return true;
        }
    }

    std::unique_ptr<Node> parse_class(bool ci) {
        Regex::Class c;
        c.negated = eat('^');
        bool first = true;
        while (true) {
            if (!more()) error("unterminated '['");
            uint32_t ch = peek();
            if (ch == ']' && !first) {
                pos_++;
                break;
            }
            first = false;
            pos_++;
            uint32_t lo;
            if (ch == '\\') {
                Regex::Class tmp;
                if (!parse_escape(tmp, &lo)) {
                    c.cat_mask |= tmp.cat_mask;
                    c.ws |= tmp.ws;
                    c.not_ws |= tmp.not_ws;
                    c.ranges.insert(c.ranges.end(), tmp.ranges.begin(), tmp.ranges.end());
                    continue;
                }
            } else {
                lo = ch;
            }
            uint32_t hi = lo;
            if (more() && peek() == '-' && pos_ + 1 < cps_.size() && cps_[pos_ + 1] != ']') {
                pos_++;
                uint32_t h = cps_[pos_++];
                if (h == '\\') {
                    Regex::Class tmp;
                    if (!parse_escape(tmp, &h)) error("class escape as range end");
                }
                hi = h;
                if (hi < lo) error("reversed range");
            }
            c.ranges.push_back({lo, hi});
        }
        if (ci) add_case_variants(c);
        return class_node(std::move(c));
    }

    std::unique_ptr<Node> parse_atom(bool ci) {
        const uint32_t c = cps_[pos_++];
        switch (c) {
            case '(': {
                bool look = false, neg = false, group_ci = ci;
                if (eat('?')) {
                    if (eat(':')) {
                    } else if (eat('=')) {
                        look = true;
                    } else if (eat('!')) {
                        look = neg = true;
                    } else if (eat('i')) {
                        if (!eat(':')) error("expected ':' after (?i");
                        group_ci = true;
                    } else {
                        error("unsupported group");
                    }
                }
                auto inner = parse_alt(group_ci);
                if (!eat(')')) error("missing ')'");
                if (!look) return inner;
                auto n = std::make_unique<Node>();
                n->kind = Node::kLook;
                n->neg = neg;
                n->kids.push_back(std::move(inner));
                return n;
            }
            case '[':
                return parse_class(ci);
            case '.': {
                Regex::Class cl;
                cl.negated = true;
                cl.ranges.push_back({'\n', '\n'});
                return class_node(std::move(cl));
            }
            case '^': {
                auto n = std::make_unique<Node>();
                n->kind = Node::kBol;
                return n;
            }
            case '$': {
                auto n = std::make_unique<Node>();
                n->kind = Node::kEol;
                return n;
            }
            case '*':
            case '+':
            case '?':
            case '{':
                error("quantifier without operand");
            case ')':
                error("unbalanced ')'");
            default:
                break;
        }
        Regex::Class cl;
        uint32_t lit = c;
        if (c == '\\' && !parse_escape(cl, &lit)) return class_node(std::move(cl));
        cl.ranges.push_back({lit, lit});
        if (ci) add_case_variants(cl);
        return class_node(std::move(cl));
    }

    int pc() const { return static_cast<int>(re_.prog_.size()); }
    int emit(Regex::Inst i) {
        re_.prog_.push_back(i);
        if (re_.prog_.size() > 100000) error("pattern too large");
        return pc() - 1;
    }

    void emit_node(const Node& n) {
        using Op = Regex::Op;
        switch (n.kind) {
            case Node::kEmpty:
                break;
            case Node::kClass:
                emit({Op::kClass, false, n.cls});
                break;
            case Node::kBol:
                emit({Op::kBol});
                break;
            case Node::kEol:
                emit({Op::kEol});
                break;
            case Node::kConcat:
                for (const auto& k : n.kids) emit_node(*k);
                break;
            case Node::kAlt: {
                // split L1, next; L1: a; jmp end; next: split L2, next2 ... last alternative plain.
                std::vector<int> jumps;
                for (size_t i = 0; i < n.kids.size(); i++) {
                    if (i + 1 < n.kids.size()) {
                        const int s = emit({Op::kSplit});
                        re_.prog_[s].x = pc();
                        emit_node(*n.kids[i]);
                        jumps.push_back(emit({Op::kJmp}));
                        re_.prog_[s].y = pc();
                    } else {
                        emit_node(*n.kids[i]);
                    }
                }
                for (int j : jumps) re_.prog_[j].x = pc();
                break;
            }
            case Node::kRepeat: {
                const Node& body = *n.kids[0];
                for (int i = 0; i < n.min; i++) emit_node(body);
                if (n.max == -1) {
                    const int s = emit({Op::kSplit});
                    emit_node(body);
                    emit({Op::kJmp, false, s});
                    set_split(s, s + 1, pc(), n.greedy);
                } else {
                    std::vector<int> splits;
                    for (int i = n.min; i < n.max; i++) {
                        splits.push_back(emit({Op::kSplit}));
                        emit_node(body);
                    }
                    for (int s : splits) set_split(s, s + 1, pc(), n.greedy);
                }
                break;
            }
            case Node::kLook: {
                const int l = emit({Op::kLook, n.neg, 0});
                re_.prog_[l].x = pc();
                emit_node(*n.kids[0]);
                emit({Op::kMatch});
                re_.prog_[l].y = pc();
                break;
            }
        }
    }

    void set_split(int s, int body, int exit, bool greedy) {
        re_.prog_[s].x = greedy ? body : exit;
        re_.prog_[s].y = greedy ? exit : body;
    }

    static void finalize(Regex::Class& c) {
        for (uint32_t cp = 0; cp < 128; cp++) {
            // ASCII props are cheap to compute here once.
            if (c.test_slow(cp, cp_props(cp))) c.ascii[cp >> 6] |= uint64_t{1} << (cp & 63);
        }
    }
};

Regex::Regex(std::string_view pattern) : pattern_(pattern) {
    RegexCompiler(*this, pattern).compile();
}

bool Regex::run(const Input& in, int pc0, size_t pos0, size_t* match_end, std::vector<Frame>& stack,
                Memo* memo) const {
    const size_t base = stack.size();
    stack.push_back({pc0, static_cast<uint32_t>(pos0)});
    while (stack.size() > base) {
        int pc = stack.back().pc;
        size_t pos = stack.back().pos;
        stack.pop_back();
        while (true) {
            // Only branch points need the memo: straight-line code between them is deterministic.
            if (memo && prog_[pc].op == Op::kSplit) {
                const size_t bit = static_cast<size_t>(pc) * memo->stride + (pos - memo->begin);
                uint64_t& word = memo->bits[bit >> 6];
                const uint64_t mask = uint64_t{1} << (bit & 63);
                if (word & mask) break;  // explored before: it failed then, it fails now
                if (word == 0) memo->touched.push_back(static_cast<uint32_t>(bit >> 6));
                word |= mask;
            }
            const Inst& I = prog_[pc];
            bool ok = true;
            switch (I.op) {
                case Op::kClass:
                    ok = pos < in.end && classes_[I.x].test(in.cps[pos], in.props[pos]);
                    pc++, pos++;
                    break;
                case Op::kSplit:
                    stack.push_back({I.y, static_cast<uint32_t>(pos)});
                    pc = I.x;
                    break;
                case Op::kJmp:
                    pc = I.x;
                    break;
                case Op::kBol:
                    ok = pos == in.begin;
                    pc++;
                    break;
                case Op::kEol:
                    ok = pos == in.end;
                    pc++;
                    break;
                case Op::kLook: {
                    size_t ignored;
                    ok = run(in, I.x, pos, &ignored, stack, nullptr) != I.neg;
                    pc = I.y;
                    break;
                }
                case Op::kMatch:
                    *match_end = pos;
                    stack.resize(base);
                    return true;
            }
            if (!ok) break;
        }
    }
    return false;
}

std::vector<size_t> Regex::split(const std::vector<uint32_t>& cps,
                                 const std::vector<uint8_t>& props,
                                 const std::vector<size_t>& fragments) const {
    std::vector<size_t> out;
    out.reserve(fragments.size() * 2);
    std::vector<Frame> stack;
    Memo memo;
    size_t start = 0;
    for (size_t len : fragments) {
        const Input in{cps.data(), props.data(), start, start + len};
        // Short fragments cannot go quadratic in any harmful way; skip the bookkeeping there.
        const size_t n_bits = prog_.size() * (len + 1);
        memo.active = len >= 64 && n_bits <= (size_t{1} << 28);  // <= 32 MiB
        if (memo.active) {
            memo.bits.assign((n_bits + 63) / 64, 0);
            memo.touched.clear();
            memo.stride = len + 1;
            memo.begin = start;
        }
        Memo* m = memo.active ? &memo : nullptr;
        size_t gap = start;  // start of the unmatched text before the next match
        for (size_t s = start; s < in.end;) {
            size_t e;
            const bool found = run(in, 0, s, &e, stack, m);
            if (found && m) memo.reset_touched();  // states on the success path did not fail
            if (found && e > s) {
                if (s > gap) out.push_back(s - gap);
                out.push_back(e - s);
                gap = s = e;
            } else {
                s++;  // no match here (empty matches are skipped)
            }
        }
        if (in.end > gap) out.push_back(in.end - gap);
        start += len;
    }
    return out;
}

}  // namespace duan::tok
