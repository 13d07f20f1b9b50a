// Tokenizer tests: the reference vectors for every vocabulary in testdata/vocab (exact ids), round
// trips, streaming detokenization, special tokens, BOS/EOG rules, the golden prompts of the test
// models, and speed.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "format/gguf.h"
#include "testdata.h"
#include "tokenizer/regex.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace duan {
namespace {

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// Inputs are separated by "\n__ggml_vocab_test__\n"; the upstream files also end with one.
std::vector<std::string> read_inputs(const std::string& path) {
    const std::string text = read_file(path);
    const std::string sep = "\n__ggml_vocab_test__\n";
    std::vector<std::string> out;
    size_t pos = 0;
    while (true) {
        const size_t m = text.find(sep, pos);
        if (m == std::string::npos) {
            if (pos < text.size()) out.push_back(text.substr(pos));
            break;
        }
        out.push_back(text.substr(pos, m - pos));
        pos = m + sep.size();
    }
    return out;
}

std::vector<std::vector<TokenId>> read_outputs(const std::string& path) {
    std::ifstream f(path);
    std::vector<std::vector<TokenId>> out;
    std::string line;
    while (std::getline(f, line)) {
        std::istringstream ls(line);
        std::vector<TokenId> ids;
        TokenId id;
        while (ls >> id) ids.push_back(id);
        out.push_back(std::move(ids));
    }
    return out;
}

// Loads (once per process) the tokenizer of a GGUF under testdata.
const Tokenizer& load(const std::string& rel) {
    static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
    auto& t = cache[rel];
    if (!t) {
        const std::string path = test::testdata(rel);
        auto file = gguf::File::open(path);
        t = Tokenizer::from_gguf(file->meta(), path);
    }
    return *t;
}

std::string ids_str(const std::vector<TokenId>& ids) {
    std::string s;
    for (TokenId id : ids) s += " " + std::to_string(id);
    return s;
}

class VocabTest : public ::testing::TestWithParam<std::string> {};

void check_vectors(const std::string& vocab, const std::string& inp, const std::string& out) {
    const auto inputs = read_inputs(test::testdata(inp));
    const auto expected = read_outputs(test::testdata(out));
    ASSERT_EQ(inputs.size(), expected.size()) << inp << " vs " << out;
    const Tokenizer& tok = load(vocab);
    int bad = 0;
    for (size_t i = 0; i < inputs.size(); i++) {
        const auto got = tok.encode(inputs[i], /*add_bos=*/false, /*parse_special=*/false);
        if (got != expected[i] && bad++ < 5)
            ADD_FAILURE() << vocab << " input " << i << " '" << inputs[i]
                          << "'\n  expected:" << ids_str(expected[i])
                          << "\n  got:     " << ids_str(got);
    }
    EXPECT_EQ(bad, 0) << vocab << ": " << bad << " of " << inputs.size() << " inputs differ";
}

TEST_P(VocabTest, ReferenceVectors) {
    const std::string v = "vocab/ggml-vocab-" + GetParam() + ".gguf";
    DUAN_REQUIRE_TESTDATA(v);
    check_vectors(v, v + ".inp", v + ".out");
}

TEST_P(VocabTest, DuanExtraVectors) {
    const std::string v = "vocab/ggml-vocab-" + GetParam() + ".gguf";
    DUAN_REQUIRE_TESTDATA(v);
    if (!std::filesystem::exists(test::testdata(v + ".duan-extra.out")))
        GTEST_SKIP() << "no duan-extra vectors for " << GetParam();
    check_vectors(v, "vocab/duan-extra.inp", v + ".duan-extra.out");
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, VocabTest,
                         ::testing::Values("llama-spm", "phi-3", "llama-bpe", "qwen2", "gpt-2",
                                           "deepseek-coder", "deepseek-llm", "falcon", "starcoder",
                                           "mpt", "refact"),
                         [](const auto& info) {
                             std::string n = info.param;
                             for (char& c : n)
                                 if (c == '-') c = '_';
                             return n;
                         });

TEST(Tokenizer, RoundTrip) {
    for (const char* name : {"llama-spm", "qwen2"}) {
        const std::string v = std::string("vocab/ggml-vocab-") + name + ".gguf";
        DUAN_REQUIRE_TESTDATA(v);
        const Tokenizer& tok = load(v);
        auto inputs = read_inputs(test::testdata(v + ".inp"));
        const auto extra = read_inputs(test::testdata("vocab/duan-extra.inp"));
        inputs.insert(inputs.end(), extra.begin(), extra.end());
        for (const auto& x : inputs) {
            EXPECT_EQ(tok.decode(tok.encode(x, false, false)), x) << name;
            EXPECT_EQ(tok.decode(tok.encode(x, true, false)), x) << name << " with BOS";
        }
    }
}

TEST(Tokenizer, Properties) {
    DUAN_REQUIRE_TESTDATA("vocab/ggml-vocab-qwen2.gguf");
    const Tokenizer& q = load("vocab/ggml-vocab-qwen2.gguf");
    EXPECT_EQ(q.model(), "gpt2");
    EXPECT_EQ(q.pre(), "qwen2");
    EXPECT_EQ(q.n_vocab(), 151669);
    EXPECT_FALSE(q.add_bos());
    EXPECT_EQ(q.find("<|im_end|>"), 151645);
    EXPECT_EQ(q.eot(), 151645);
    EXPECT_TRUE(q.is_eog(151645));  // <|im_end|>
    EXPECT_TRUE(q.is_eog(151643));  // <|endoftext|>
    EXPECT_FALSE(q.is_eog(151644));
    EXPECT_FALSE(q.is_eog(-1));
    EXPECT_EQ(q.token_type(151644), TokenType::CONTROL);
    EXPECT_EQ(q.token_type(151667), TokenType::USER_DEFINED);
    EXPECT_EQ(q.token_to_piece(151644, false), "");
    EXPECT_EQ(q.token_to_piece(151644, true), "<|im_start|>");
    EXPECT_EQ(q.token_to_piece(220, false), " ");
    EXPECT_EQ(q.token_to_piece(-5, true), "");
    EXPECT_EQ(q.token_to_piece(1 << 30, true), "");

    // Special-token text: tokens with parse_special, plain text without.
    const std::string chat = "<|im_start|>user\nhi<|im_end|>";
    EXPECT_EQ(q.encode(chat, false, true), (std::vector<TokenId>{151644, 872, 198, 6023, 151645}));
    EXPECT_EQ(q.encode(chat, false, false),
              (std::vector<TokenId>{27, 91, 318, 4906, 91, 29, 872, 198, 6023, 27, 91, 318, 6213,
                                    91, 29}));
    // User-defined tokens are matched even without parse_special (as the reference does).
    EXPECT_EQ(q.encode("a<think>b", false, false), (std::vector<TokenId>{64, 151667, 65}));

    DUAN_REQUIRE_TESTDATA("vocab/ggml-vocab-llama-bpe.gguf");
    const Tokenizer& l3 = load("vocab/ggml-vocab-llama-bpe.gguf");
    EXPECT_TRUE(l3.add_bos());
    EXPECT_EQ(l3.bos(), 128000);
    EXPECT_EQ(l3.eot(), 128009);
    EXPECT_TRUE(l3.is_eog(128001));
    EXPECT_TRUE(l3.is_eog(128009));
    EXPECT_EQ(l3.encode("Hello", true, false), (std::vector<TokenId>{128000, 9906}));
    EXPECT_EQ(l3.encode("<|begin_of_text|>Hello", false, true),
              (std::vector<TokenId>{128000, 9906}));

    const Tokenizer& spm = load("vocab/ggml-vocab-llama-spm.gguf");
    EXPECT_EQ(spm.model(), "llama");
    EXPECT_TRUE(spm.add_bos());
    EXPECT_EQ(spm.bos(), 1);
    EXPECT_EQ(spm.eos(), 2);
    EXPECT_TRUE(spm.is_eog(2));
    EXPECT_EQ(spm.token_type(13), TokenType::BYTE);
    EXPECT_EQ(spm.token_to_piece(13, false), "\n");
    EXPECT_EQ(spm.encode("", true, false), (std::vector<TokenId>{1}));
    EXPECT_EQ(spm.encode("", false, false), (std::vector<TokenId>{}));
    // A special token is followed by text with the SentencePiece space prefix.
    const auto with_special = spm.encode("<s>Hello", false, true);
    ASSERT_FALSE(with_special.empty());
    EXPECT_EQ(with_special[0], 1);
    EXPECT_EQ(spm.decode(with_special), "Hello");
    EXPECT_EQ(spm.decode(with_special, true), "<s>Hello");
}

TEST(Tokenizer, InvalidUtf8DoesNotCrash) {
    for (const char* name : {"llama-spm", "qwen2", "deepseek-llm", "falcon"}) {
        const std::string v = std::string("vocab/ggml-vocab-") + name + ".gguf";
        DUAN_REQUIRE_TESTDATA(v);
        const Tokenizer& tok = load(v);
        const std::string bad =
            "a\xff\xfe b\xe4\xb8 \xc3\x28 \xf0\x9f\x98 \xed\xa0\x80 \xf8\x88\x80\x80";
        const auto ids = tok.encode(bad, true, true);
        EXPECT_FALSE(ids.empty()) << name;
        for (TokenId id : ids) EXPECT_TRUE(id >= 0 && id < tok.n_vocab()) << name;
        (void)tok.decode(ids);
    }
}

TEST(Tokenizer, StreamDecoderHoldsPartialCodePoints) {
    const std::string zh = "端侧推理的最大优势是成本";
    for (const char* name : {"llama-spm", "qwen2"}) {
        const std::string v = std::string("vocab/ggml-vocab-") + name + ".gguf";
        DUAN_REQUIRE_TESTDATA(v);
        const Tokenizer& tok = load(v);
        // One byte token per byte of the text.
        std::vector<TokenId> ids;
        for (unsigned char b : zh) {
            TokenId id = -1;
            if (tok.model() == "llama") {
                char buf[8];
                snprintf(buf, sizeof buf, "<0x%02X>", b);
                id = tok.find(buf);
            } else {
                // GPT-2 byte alphabet: printable bytes map to themselves, others to U+0100+.
                for (TokenId t = 0; t < 256 && id < 0; t++)
                    if (tok.token_to_piece(t, false) == std::string(1, static_cast<char>(b)))
                        id = t;
                if (id < 0) {
                    // Search the whole vocabulary once for single-byte pieces.
                    for (TokenId t = 0; t < tok.n_vocab() && id < 0; t++)
                        if (tok.token_to_piece(t, false) == std::string(1, static_cast<char>(b)))
                            id = t;
                }
            }
            ASSERT_GE(id, 0) << name << " byte " << int(b);
            ids.push_back(id);
        }
        StreamDecoder dec(tok);
        std::string out;
        for (size_t i = 0; i < ids.size(); i++) {
            const std::string piece = dec.push(ids[i]);
            // Every Chinese character here is 3 bytes: text appears only on each third byte.
            EXPECT_EQ(piece.size(), (i % 3 == 2) ? 3u : 0u) << name << " at byte " << i;
            out += piece;
        }
        out += dec.flush();
        EXPECT_EQ(out, zh) << name;

        // A truncated sequence at the end becomes U+FFFD on flush.
        StreamDecoder dec2(tok);
        EXPECT_EQ(dec2.push(ids[0]), "");
        EXPECT_EQ(dec2.push(ids[1]), "");
        EXPECT_EQ(dec2.flush(), "\xEF\xBF\xBD");
        EXPECT_EQ(dec2.flush(), "");
    }
}

std::vector<TokenId> golden_prompt(const std::string& rel) {
    const auto j = nlohmann::json::parse(read_file(test::testdata(rel)));
    return j.at("prompt").get<std::vector<TokenId>>();
}

TEST(Tokenizer, Stories260K) {
    DUAN_REQUIRE_TESTDATA("models/stories260K.gguf");
    const Tokenizer& tok = load("models/stories260K.gguf");
    const auto ids = tok.encode("Once upon a time", tok.add_bos(), false);
    EXPECT_EQ(ids, golden_prompt("golden/stories260K.once.json"));
    EXPECT_EQ(tok.decode(ids), "Once upon a time");
}

TEST(Tokenizer, GoldenPrompts) {
    const std::map<std::string, std::string> prompts = {
        {"en",
         "The quick brown fox jumps over the lazy dog. On-device inference keeps data private "
         "and costs nothing."},
        {"zh", "在客户端上跑大模型,一定是未来的趋势。"}};
    for (const char* model : {"llama-tiny-f32", "qwen2-tiny-f32", "qwen3-tiny-f32"}) {
        const std::string m = std::string("models/") + model + ".gguf";
        DUAN_REQUIRE_TESTDATA(m);
        const Tokenizer& tok = load(m);
        for (const auto& [key, text] : prompts) {
            const std::string g = std::string("golden/") + model + "." + key + ".json";
            EXPECT_EQ(ids_str(tok.encode(text, true, false)), ids_str(golden_prompt(g)))
                << model << " " << key;
        }
    }
}

TEST(Tokenizer, Speed) {
    DUAN_REQUIRE_TESTDATA("vocab/ggml-vocab-qwen2.gguf");
    const std::string path = test::testdata("vocab/ggml-vocab-qwen2.gguf");
    auto file = gguf::File::open(path);
    const auto t0 = std::chrono::steady_clock::now();
    auto tok = Tokenizer::from_gguf(file->meta(), path);
    const auto t1 = std::chrono::steady_clock::now();
    std::string text;
    const auto a = read_file(test::testdata("vocab/duan-extra.inp"));
    const auto b = read_file(test::testdata("vocab/ggml-vocab-qwen2.gguf.inp"));
    while (text.size() < 100000) text += a + b;
    text.resize(100000);
    const auto ids = tok->encode(text, false, true);
    const auto t2 = std::chrono::steady_clock::now();
    const double build_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    const double enc_ms = std::chrono::duration<double, std::milli>(t2 - t1).count();
    std::printf("qwen2 tokenizer: build %.1f ms, encode 100 KB %.1f ms (%zu tokens)\n", build_ms,
                enc_ms, ids.size());
    // Generous bounds: the suite also runs under ASan and qemu.
    EXPECT_LT(build_ms, 5000);
    EXPECT_LT(enc_ms, 10000);
}

}  // namespace
}  // namespace duan

namespace duan::tok {
namespace {

// Splits `text` with one regex and returns the pieces joined by '|'.
std::string split_with(const std::string& pattern, const std::string& text) {
    const Regex re(pattern);
    const auto cps = unicode::decode_utf8(text);
    std::vector<uint8_t> props(cps.size());
    for (size_t i = 0; i < cps.size(); i++) props[i] = cp_props(cps[i]);
    std::vector<size_t> frags;
    if (!cps.empty()) frags.push_back(cps.size());
    std::string out;
    size_t start = 0;
    for (size_t len : re.split(cps, props, frags)) {
        if (!out.empty()) out += '|';
        for (size_t i = start; i < start + len; i++) unicode::append_utf8(out, cps[i]);
        start += len;
    }
    return out;
}

TEST(TokenizerRegex, Semantics) {
    // Lookahead: a whitespace run before a word leaves its last space to the word.
    EXPECT_EQ(split_with("\\s+(?!\\S)| ?\\p{L}+", "a   b"), "a|  | b");
    EXPECT_EQ(split_with("\\s+(?!\\S)|\\s+", "x  "), "x|  ");
    // Case-insensitive group, bounded repeats, categories, negated classes, gaps kept.
    EXPECT_EQ(split_with("(?i:'s|'ll)", "it'S he'Ll"), "it|'S| he|'Ll");
    EXPECT_EQ(split_with("\\p{N}{1,3}", "12345a"), "123|45|a");
    EXPECT_EQ(split_with("[^\\s\\p{L}]+", "ab!?  ¿¡c"), "ab|!?|  |¿¡|c");
    EXPECT_EQ(split_with("\\p{Lu}\\p{Ll}*", "HelloWorld ÄÖü"), "Hello|World| |Ä|Öü");
    EXPECT_EQ(split_with("[一-龥]+", "中文abc日本"), "中文|abc|日本");
    EXPECT_EQ(split_with("\\s+$", "a  "), "a|  ");
    EXPECT_EQ(split_with("a{2}b?", "aaab"), "aa|ab");
    // Alternation is leftmost-first, not longest.
    EXPECT_EQ(split_with("a|ab", "ab"), "a|b");
    // White_Space includes U+3000 and U+0085 but not U+200B.
    EXPECT_EQ(split_with("\\s+", "a\u3000\u0085b\u200Bc"), "a|\u3000\u0085|b\u200Bc");
    // Long inputs use the explicit backtracking stack, not recursion.
    EXPECT_EQ(split_with("\\s+(?!\\S)|\\s+", std::string(200000, ' ')).size(), 200000u);
    EXPECT_THROW(Regex("(a"), Error);
    EXPECT_THROW(Regex("[z-a]"), Error);
    EXPECT_THROW(Regex("\\p{Xx}"), Error);
}

TEST(TokenizerUnicode, Categories) {
    using unicode::Category;
    EXPECT_EQ(unicode::category('A'), Category::Lu);
    EXPECT_EQ(unicode::category(0x4E2D), Category::Lo);  // 中 (inside a First/Last range)
    EXPECT_EQ(unicode::category(0xAC00), Category::Lo);  // 가
    EXPECT_EQ(unicode::category(0x0300), Category::Mn);
    EXPECT_EQ(unicode::category(0x0661), Category::Nd);   // Arabic-Indic one
    EXPECT_EQ(unicode::category(0x1F680), Category::So);  // rocket
    EXPECT_EQ(unicode::category(0x10FFFF), Category::Cn);
    EXPECT_EQ(unicode::category(0x110000), Category::Cn);
    EXPECT_TRUE(unicode::is_whitespace(0x3000));
    EXPECT_FALSE(unicode::is_whitespace(0x200B));
    EXPECT_FALSE(unicode::is_whitespace(0x1C));
    // Lenient decoding: each bad byte becomes U+FFFD.
    EXPECT_EQ(unicode::decode_utf8("a\xff\xe4\xb8"),
              (std::vector<uint32_t>{'a', 0xFFFD, 0xFFFD, 0xFFFD}));
    EXPECT_EQ(unicode::complete_utf8_prefix("ab\xe4\xb8"), 2u);
    EXPECT_EQ(unicode::complete_utf8_prefix("ab\xe4\xb8\xad"), 5u);
    for (int b = 0; b < 256; b++)
        EXPECT_EQ(unicode::cp_to_byte(unicode::byte_to_cp(static_cast<uint8_t>(b))), b);
}

}  // namespace
}  // namespace duan::tok
