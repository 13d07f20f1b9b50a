#include "tokenizer/pretokenizer.h"

#include "tokenizer/unicode.h"

namespace duan::tok {

namespace {

// The patterns below are the reference's (llama.cpp src/llama-vocab.cpp), which are in turn the
// tokenizer.json pre-tokenizers of the original models; (?i:...) contractions appear as their
// expanded [sS] form there.
constexpr const char* kGpt2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
constexpr const char* kLlama3 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kQwen2 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kGpt4o =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"
    "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kTekken =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|"
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|"
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

struct Named {
    const char* names;  // '|'-separated aliases
    PreTokenizerSpec spec;
};

const std::vector<Named>& table() {
    static const std::vector<Named> t = {
        {"default|", {{"[\\p{P}\\$\\+<=>\\^~\\|]+", kGpt2, "\\p{N}+", "[0-9][0-9][0-9]"}}},
        {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2",
         {{kLlama3}, /*ignore_merges=*/true, /*add_bos=*/true}},
        {"dbrx|smaug-bpe", {{kLlama3}}},
        {"chatglm-bpe|glm4", {{kLlama3}, false, false, /*no_bos=*/true}},
        {"qwen2|deepseek-r1-qwen|stablelm2|megrez|hunyuan|kormo", {{kQwen2}}},
        {"gpt-2|phi-2|jina-es|jina-de|gigachat|jina-v2-es|jina-v2-de|a.x-4.0|mellum|modern-bert|"
         "mpt|olmo|jais|trillion|granite-docling|exaone4|jina-v1-en|jina-v2-code|roberta-bpe",
         {{kGpt2}}},
        {"starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b", {{"\\p{N}", kGpt2}}},
        {"falcon", {{"[\\p{P}\\$\\+<=>\\^~\\|`]+", kGpt2, "[0-9][0-9][0-9]"}}},
        {"deepseek-coder",
         {{"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"}}},
        // Written with UCN escapes: some of these letters (U+1F7D, U+1FBE, U+2126, U+212A...) have
        // canonical decompositions, and an editor that normalizes to NFC would silently change
        // them.
        {"deepseek-llm",
         {{"[\r\n]",
           "\\s?[A-Za-z\u00B5\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u01BA\u01BC-\u01BF\u01C4-\u0293"
           "\u0295-\u02AF\u0370-\u0373\u0376\u0377\u037B-\u037D\u037F\u0386\u0388-\u038A\u038C"
           "\u038E-\u03A1\u03A3-\u03F5\u03F7-\u0481\u048A-\u052F\u0531-\u0556\u10A0-\u10C5"
           "\u13A0-\u13F5\u13F8-\u13FD\u1C90-\u1CBA\u1CBD-\u1CBF\u1D00-\u1D2B\u1D6B-\u1D77"
           "\u1D79-\u1D9A\u1E00-\u1F15\u1F18-\u1F1D\u1F20-\u1F45\u1F48-\u1F4D\u1F50-\u1F57"
           "\u1F59\u1F5B\u1F5D\u1F5F-\u1F7D\u1F80-\u1FB4\u1FB6-\u1FBC\u1FBE\u1FC2-\u1FC4"
           "\u1FC6-\u1FCC\u1FD0-\u1FD3\u1FD6-\u1FDB\u1FE0-\u1FEC\u1FF2-\u1FF4\u1FF6-\u1FFC"
           "\u2102\u2107\u210A-\u2113\u2115\u2119-\u211D\u2124\u2126\u2128\u212A-\u212D"
           "\u212F-\u2134\u2139\u213C-\u213F\u2145-\u2149\u214E\u2183\u2184\u2C00-\u2C7B"
           "\u2C7E-\u2CE4\u2CEB-\u2CEE\u2CF2\u2CF3\uA640-\uA66D\uA680-\uA69B\uA722-\uA76F"
           "\uA771-\uA787\uA78B-\uA78E\uAB70-\uABBF\uFB00-\uFB06\uFB13-\uFB17\uFF21-\uFF3A"
           "\uFF41-\uFF5A\U00010400-\U0001044F\U000104B0-\U000104D3\U000104D8-\U000104FB"
           "\U00010C80-\U00010CB2\U00010CC0-\U00010CF2\U000118A0-\U000118DF"
           "\U0001E900-\U0001E943]+",
           "\\s?[!-/:-~！-／：-～‘-‟　-。]+", "\\s+$", "[一-龥ࠀ-一가-퟿]+", "\\p{N}+"}}},
        {"deepseek-v3|hunyuan-dense",
         {{"\\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+",
           "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}"
           "\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"}}},
        {"gpt-4o|llama4", {{kGpt4o}}},
        {"tekken", {{kTekken}, /*ignore_merges=*/true, /*add_bos=*/true}},
        {"poro-chat|bloom|gpt3-finnish", {{" ?[^(\\s|.,!?…。，、।۔،)]+"}}},
        {"viking", {{" ?[^(\\s|.,!?…。，、।۔،)]+", "\\p{N}"}}},
    };
    return t;
}

}  // namespace

const PreTokenizerSpec* find_pretokenizer(std::string_view name) {
    for (const auto& n : table()) {
        std::string_view names = n.names;
        while (true) {
            const size_t bar = names.find('|');
            if (names.substr(0, bar) == name) return &n.spec;
            if (bar == std::string_view::npos) break;
            names.remove_prefix(bar + 1);
        }
    }
    return nullptr;
}

PreTokenizer::PreTokenizer(const PreTokenizerSpec& spec) {
    regexes_.reserve(spec.regexes.size());
    for (const auto& r : spec.regexes) regexes_.emplace_back(r);
}

std::vector<std::string> PreTokenizer::split(std::string_view text) const {
    const std::vector<uint32_t> cps = unicode::decode_utf8(text);
    std::vector<uint8_t> props(cps.size());
    for (size_t i = 0; i < cps.size(); i++) props[i] = cp_props(cps[i]);
    std::vector<size_t> frags;
    if (!cps.empty()) frags.push_back(cps.size());
    for (const auto& re : regexes_) frags = re.split(cps, props, frags);
    std::vector<std::string> words;
    words.reserve(frags.size());
    size_t start = 0;
    for (size_t len : frags) {
        std::string w;
        for (size_t i = start; i < start + len; i++) unicode::append_utf8(w, cps[i]);
        words.push_back(std::move(w));
        start += len;
    }
    return words;
}

}  // namespace duan::tok
