#include "diffusion/clip_tokenizer.h"

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <limits>

#include "core/error.h"

namespace duan::diffusion {

namespace {

std::string utf8(uint32_t cp) {
    std::string s;
    if (cp < 0x80) {
        s += static_cast<char>(cp);
    } else if (cp < 0x800) {
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        s += static_cast<char>(0xE0 | (cp >> 12));
        s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return s;
}

// C-locale character classes (what std::regex uses on std::string in the reference).
bool c_space(unsigned char c) {
    return c == ' ' || (c >= '\t' && c <= '\r');
}
bool c_alpha(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool c_digit(unsigned char c) {
    return c >= '0' && c <= '9';
}

// Splits a UTF-8 string into its code point substrings (invalid bytes stand alone).
std::vector<std::string> utf8_chars(const std::string& s) {
    std::vector<std::string> out;
    for (size_t i = 0; i < s.size();) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
        if (i + n > s.size()) n = 1;
        out.push_back(s.substr(i, n));
        i += n;
    }
    return out;
}

}  // namespace

ClipTokenizer ClipTokenizer::from_merges_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) fail(path, ": cannot open CLIP merges file");
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return ClipTokenizer(text, path);
}

ClipTokenizer::ClipTokenizer(std::string_view merges_text, const std::string& where) {
    // GPT-2 byte-to-unicode: printable Latin-1 bytes map to themselves, the rest to 256+n.
    std::vector<int> order;
    for (int b = 33; b <= 126; ++b) order.push_back(b);
    for (int b = 161; b <= 172; ++b) order.push_back(b);
    for (int b = 174; b <= 255; ++b) order.push_back(b);
    bool printable[256] = {};
    for (int b : order) printable[b] = true;
    uint32_t extra = 0;
    for (int b = 0; b < 256; ++b) byte_sym_[b] = printable[b] ? utf8(b) : utf8(256 + extra++);
    for (int b = 0; b < 256; ++b)
        if (!printable[b]) order.push_back(b);

    for (int b : order) vocab_.push_back(byte_sym_[b]);
    for (int b : order) vocab_.push_back(byte_sym_[b] + "</w>");
    size_t pos = 0, line_no = 0;
    while (pos < merges_text.size()) {
        size_t e = merges_text.find('\n', pos);
        if (e == std::string_view::npos) e = merges_text.size();
        std::string_view line = merges_text.substr(pos, e - pos);
        pos = e + 1;
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line_no == 1 && line.rfind("#version", 0) == 0) continue;
        if (line.empty()) continue;
        size_t sp = line.find(' ');
        if (sp == std::string_view::npos || sp == 0 || sp + 1 >= line.size())
            fail(where, ": line ", line_no, ": a merge must be two symbols separated by a space");
        merge_rank_.emplace(std::string(line), static_cast<int32_t>(merge_rank_.size()));
        vocab_.push_back(std::string(line.substr(0, sp)) + std::string(line.substr(sp + 1)));
    }
    vocab_.push_back("<|startoftext|>");
    vocab_.push_back("<|endoftext|>");
    if (vocab_.size() != 49408)
        fail(where, ": expected 48894 merges (vocabulary 49408), got a vocabulary of ",
             vocab_.size());
    for (size_t i = 0; i < vocab_.size(); ++i)
        token_id_.emplace(vocab_[i], static_cast<int32_t>(i));  // first occurrence wins
}

std::vector<std::string> ClipTokenizer::bpe(const std::string& piece) const {
    std::vector<std::string> w = utf8_chars(piece);
    if (w.empty()) return w;
    w.back() += "</w>";
    while (w.size() > 1) {
        int32_t best = std::numeric_limits<int32_t>::max();
        size_t at = 0;
        for (size_t i = 0; i + 1 < w.size(); ++i) {
            auto it = merge_rank_.find(w[i] + " " + w[i + 1]);
            if (it != merge_rank_.end() && it->second < best) best = it->second, at = i;
        }
        if (best == std::numeric_limits<int32_t>::max()) break;
        // Merge every occurrence of the best pair, left to right (as the reference does).
        const std::string a = w[at], b = w[at + 1];
        std::vector<std::string> nw;
        for (size_t i = 0; i < w.size();) {
            if (i + 1 < w.size() && w[i] == a && w[i + 1] == b) {
                nw.push_back(a + b);
                i += 2;
            } else {
                nw.push_back(w[i++]);
            }
        }
        w.swap(nw);
    }
    return w;
}

std::vector<int32_t> ClipTokenizer::encode(std::string_view text) const {
    // Normalize: whitespace runs -> one space, strip, ASCII lower case.
    std::string t;
    for (unsigned char c : text) {
        if (c_space(c)) {
            if (!t.empty() && t.back() != ' ') t += ' ';
        } else {
            t += static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
    }
    if (!t.empty() && t.back() == ' ') t.pop_back();

    std::vector<int32_t> ids;
    auto emit = [&](const std::string& piece) {
        std::string enc;
        for (unsigned char c : piece) enc += byte_sym_[c];
        for (const auto& sym : bpe(enc)) {
            auto it = token_id_.find(sym);
            // Every BPE result is in the vocabulary by construction; unknown would be a bad file.
            ids.push_back(it == token_id_.end() ? kEos : it->second);
        }
    };
    static const char* kContractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    for (size_t i = 0; i < t.size();) {
        const unsigned char c = static_cast<unsigned char>(t[i]);
        if (c_space(c)) {
            ++i;
            continue;
        }
        if (c == '\'') {
            bool hit = false;
            for (const char* k : kContractions) {
                std::string_view kv(k);
                if (t.compare(i, kv.size(), kv) == 0) {
                    emit(std::string(kv));
                    i += kv.size();
                    hit = true;
                    break;
                }
            }
            if (hit) continue;
        }
        size_t j = i + 1;
        if (c_alpha(c)) {
            while (j < t.size() && c_alpha(static_cast<unsigned char>(t[j]))) ++j;
        } else if (!c_digit(c)) {
            while (j < t.size()) {
                unsigned char d = static_cast<unsigned char>(t[j]);
                if (c_space(d) || c_alpha(d) || c_digit(d)) break;
                ++j;
            }
        }
        emit(t.substr(i, j - i));
        i = j;
    }
    return ids;
}

namespace {
bool word_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}
// \b at position i of t (ECMAScript: between a word and a non-word character).
bool boundary(std::string_view t, size_t i) {
    const bool before = i > 0 && word_char(t[i - 1]);
    const bool after = i < t.size() && word_char(t[i]);
    return before != after;
}
}  // namespace

std::vector<std::pair<std::string, float>> parse_prompt_attention(std::string_view t) {
    std::vector<std::pair<std::string, float>> res;
    std::vector<size_t> round, square;
    auto multiply = [&](size_t from, float m) {
        for (size_t p = from; p < res.size(); ++p) res[p].second *= m;
    };
    size_t i = 0;
    while (i < t.size()) {
        // The alternatives of the reference's regex, in its order; the first that matches at the
        // leftmost position wins, and characters no alternative matches are skipped.
        const char c = t[i];
        if (c == '\\') {
            if (i + 1 < t.size() &&
                std::string_view("()[]\\").find(t[i + 1]) != std::string_view::npos) {
                if (t[i + 1] == '(')
                    res.push_back({"(", 1.0f});
                else
                    res.push_back({std::string(t.substr(i, 2)), 1.0f});
                i += 2;
            } else {
                res.push_back({"\\", 1.0f});
                ++i;
            }
        } else if (c == '(') {
            round.push_back(res.size());
            ++i;
        } else if (c == '[') {
            square.push_back(res.size());
            ++i;
        } else if (c == ':') {
            // ":([+-]?[.\d]+)\)"
            size_t j = i + 1;
            if (j < t.size() && (t[j] == '+' || t[j] == '-')) ++j;
            const size_t num = j;
            while (j < t.size() && (t[j] == '.' || (t[j] >= '0' && t[j] <= '9'))) ++j;
            if (j > num && j < t.size() && t[j] == ')') {
                if (!round.empty()) {
                    const std::string w(t.substr(i + 1, j - i - 1));
                    char* end = nullptr;
                    const float f = std::strtof(w.c_str(), &end);
                    multiply(round.back(), end != w.c_str() ? f : 1.0f);
                    round.pop_back();
                }
                i = j + 1;
            } else {
                res.push_back({":", 1.0f});
                ++i;
            }
        } else if (c == ')') {  // unmatched: kept as text
            if (!round.empty())
                multiply(round.back(), 1.1f), round.pop_back();
            else
                res.push_back({")", 1.0f});
            ++i;
        } else if (c == ']') {
            if (!square.empty())
                multiply(square.back(), 1.0f / 1.1f), square.pop_back();
            else
                res.push_back({"]", 1.0f});
            ++i;
        } else if (c == 'B') {
            if (boundary(t, i) && t.substr(i, 5) == "BREAK" && boundary(t, i + 5)) {
                res.push_back({"BREAK", -1.0f});
                i += 5;
            } else if (boundary(t, i)) {
                res.push_back({"B", 1.0f});
                ++i;
            } else {
                ++i;  // no alternative matches here: the reference's regex_search skips it
            }
        } else {
            size_t j = i;
            while (j < t.size() &&
                   std::string_view("\\()[]:B").find(t[j]) == std::string_view::npos)
                ++j;
            res.push_back({std::string(t.substr(i, j - i)), 1.0f});
            i = j;
        }
    }
    for (size_t p : round) multiply(p, 1.1f);
    for (size_t p : square) multiply(p, 1.0f / 1.1f);
    if (res.empty()) res.push_back({"", 1.0f});
    for (size_t k = 0; k + 1 < res.size();) {
        if (res[k].second == res[k + 1].second) {
            res[k].first += res[k + 1].first;
            res.erase(res.begin() + static_cast<long>(k) + 1);
        } else {
            ++k;
        }
    }
    return res;
}

std::pair<std::vector<int32_t>, std::vector<float>> ClipTokenizer::encode_weighted(
    std::string_view text) const {
    std::vector<int32_t> ids;
    std::vector<float> wts;
    for (const auto& [piece, w] : parse_prompt_attention(text)) {
        if (piece == "BREAK" && w == -1.0f) {
            const size_t pad = (75 - ids.size() % 75) % 75;
            ids.insert(ids.end(), pad, kEos);
            wts.insert(wts.end(), pad, 1.0f);
            continue;
        }
        const std::vector<int32_t> t = encode(piece);
        ids.insert(ids.end(), t.begin(), t.end());
        wts.insert(wts.end(), t.size(), w);
    }
    const size_t per = kContext - 2;
    const size_t chunks = ids.empty() ? 1 : (ids.size() + per - 1) / per;
    std::pair<std::vector<int32_t>, std::vector<float>> out;
    for (size_t c = 0; c < chunks; ++c) {
        out.first.push_back(kBos);
        out.second.push_back(1.0f);
        const size_t b = c * per, e = std::min(ids.size(), b + per);
        out.first.insert(out.first.end(), ids.begin() + static_cast<long>(b),
                         ids.begin() + static_cast<long>(e));
        out.second.insert(out.second.end(), wts.begin() + static_cast<long>(b),
                          wts.begin() + static_cast<long>(e));
        out.first.push_back(kEos);
        out.second.push_back(1.0f);
        out.first.resize((c + 1) * kContext, kEos);
        out.second.resize((c + 1) * kContext, 1.0f);
    }
    return out;
}

}  // namespace duan::diffusion
