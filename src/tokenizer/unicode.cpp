#include "tokenizer/unicode.h"

#include <algorithm>
#include <array>

namespace duan::unicode {

namespace data {
extern const uint32_t kCategoryRuns[];
extern const size_t kCategoryRunCount;
extern const uint32_t kWhiteSpace[];
extern const size_t kWhiteSpaceCount;
}  // namespace data

namespace {

struct AsciiTable {
    std::array<Category, 128> cat{};
    AsciiTable() {
        for (uint32_t c = 0; c < 128; c++) {
            const uint32_t* end = data::kCategoryRuns + data::kCategoryRunCount;
            const uint32_t* it = std::upper_bound(data::kCategoryRuns, end, (c << 8) | 0xFF);
            cat[c] = static_cast<Category>(it[-1] & 0xFF);
        }
    }
};

}  // namespace

Category category(uint32_t cp) {
    static const AsciiTable ascii;
    if (cp < 128) return ascii.cat[cp];
    if (cp > 0x10FFFF) return Category::Cn;
    const uint32_t* end = data::kCategoryRuns + data::kCategoryRunCount;
    // Runs are (start << 8) | cat; the last run whose start <= cp holds cp.
    const uint32_t* it = std::upper_bound(data::kCategoryRuns, end, (cp << 8) | 0xFF);
    return static_cast<Category>(it[-1] & 0xFF);
}

bool is_whitespace(uint32_t cp) {
    if (cp < 128) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    const uint32_t* end = data::kWhiteSpace + data::kWhiteSpaceCount;
    return std::binary_search(data::kWhiteSpace, end, cp);
}

uint32_t decode_utf8(std::string_view s, size_t* pos) {
    const size_t i = *pos;
    const auto b = [&](size_t k) { return static_cast<uint8_t>(s[i + k]); };
    const auto cont = [&](size_t k) { return i + k < s.size() && (b(k) & 0xC0) == 0x80; };
    const uint8_t c0 = b(0);
    if (c0 < 0x80) {
        *pos = i + 1;
        return c0;
    }
    uint32_t cp = 0;
    size_t n = 0;
    if ((c0 & 0xE0) == 0xC0) {
        if (cont(1)) cp = ((c0 & 0x1Fu) << 6) | (b(1) & 0x3Fu), n = 2;
    } else if ((c0 & 0xF0) == 0xE0) {
        if (cont(1) && cont(2))
            cp = ((c0 & 0x0Fu) << 12) | ((b(1) & 0x3Fu) << 6) | (b(2) & 0x3Fu), n = 3;
    } else if ((c0 & 0xF8) == 0xF0) {
        if (cont(1) && cont(2) && cont(3))
            cp = ((c0 & 0x07u) << 18) | ((b(1) & 0x3Fu) << 12) | ((b(2) & 0x3Fu) << 6) |
                 (b(3) & 0x3Fu),
            n = 4;
    }
    if (n == 0 || cp > 0x10FFFF) {
        *pos = i + 1;
        return kReplacement;
    }
    *pos = i + n;
    return cp;
}

std::vector<uint32_t> decode_utf8(std::string_view s) {
    std::vector<uint32_t> out;
    out.reserve(s.size());
    for (size_t pos = 0; pos < s.size();) out.push_back(decode_utf8(s, &pos));
    return out;
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp <= 0x10FFFF) {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        append_utf8(out, kReplacement);
    }
}

size_t complete_utf8_prefix(std::string_view s) {
    // Look back at most 3 bytes for a lead byte whose sequence is not finished yet.
    const size_t n = s.size();
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        const uint8_t c = static_cast<uint8_t>(s[n - back]);
        if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
        size_t need = 0;
        if ((c & 0xE0) == 0xC0)
            need = 2;
        else if ((c & 0xF0) == 0xE0)
            need = 3;
        else if ((c & 0xF8) == 0xF0)
            need = 4;
        return need > back ? n - back : n;  // incomplete sequence: hold it back
    }
    return n;
}

namespace {

struct ByteMap {
    std::array<uint32_t, 256> to_cp{};
    std::array<int16_t, 324> to_byte{};  // code points used are < 256 + 68
    ByteMap() {
        to_byte.fill(-1);
        const auto printable = [](int b) {
            return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        };
        uint32_t next = 256;
        for (int b = 0; b < 256; b++) to_cp[b] = printable(b) ? b : next++;
        for (int b = 0; b < 256; b++) to_byte[to_cp[b]] = static_cast<int16_t>(b);
    }
};

const ByteMap& byte_map() {
    static const ByteMap m;
    return m;
}

}  // namespace

uint32_t byte_to_cp(uint8_t b) {
    return byte_map().to_cp[b];
}

int cp_to_byte(uint32_t cp) {
    return cp < 324 ? byte_map().to_byte[cp] : -1;
}

}  // namespace duan::unicode
