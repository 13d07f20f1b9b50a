// CLIP BPE tokenizer as Stable Diffusion 1.x uses it, built from OpenAI's merges.txt alone
// (SD checkpoints carry no tokenizer). Vocabulary (49408): the 256 byte-to-unicode symbols, the
// same with "</w>", one entry per merge in file order, then <|startoftext|> 49406 and
// <|endoftext|> 49407.
//
// Text rules (what the reference does, byte-wise in the C locale): collapse runs of whitespace to
// one space and strip; lower-case ASCII; split with
//   's|'t|'re|'ve|'m|'ll|'d|[[:alpha:]]+|[[:digit:]]|[^[:space:][:alpha:][:digit:]]+
// where the classes are ASCII-only (so UTF-8 bytes >= 0x80 fall in the "other" run, exactly as
// std::regex over std::string does); each piece is byte-encoded, gets "</w>" on its last symbol
// and is merged by lowest merge rank.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace duan::diffusion {

// A1111 prompt emphasis as the reference parses it: "(x)" ×1.1, "[x]" ÷1.1, "(x:1.5)" ×1.5,
// nesting multiplies, unbalanced brackets close at the end, "\\(" is a literal "(", "BREAK" is
// returned as {"BREAK", -1}; neighbouring pieces of equal weight are merged. Mirrors the
// reference's regex exactly, including its quirks (other escapes stay verbatim; a "B" inside a word
// is dropped).
std::vector<std::pair<std::string, float>> parse_prompt_attention(std::string_view text);

class ClipTokenizer {
  public:
    static constexpr int32_t kBos = 49406;
    static constexpr int32_t kEos = 49407;  // also the padding token for SD1
    static constexpr int kContext = 77;     // tokens per chunk including BOS/EOS

    // Reads merges.txt ("#version" line + one "a b" merge per line); throws naming the file.
    static ClipTokenizer from_merges_file(const std::string& path);
    ClipTokenizer(std::string_view merges_text, const std::string& where);

    // Token ids of the text without BOS/EOS.
    std::vector<int32_t> encode(std::string_view text) const;
    // The prompt with A1111 emphasis syntax (see parse_prompt_attention), as ids and per-token
    // weights: BOS + tokens + EOS per chunk of 75 tokens, each chunk right-padded with EOS to 77
    // (BOS/EOS/padding weigh 1). "BREAK" pads the current chunk. An empty prompt gives one chunk.
    // Result size is a multiple of 77.
    std::pair<std::vector<int32_t>, std::vector<float>> encode_weighted(
        std::string_view text) const;
    std::vector<int32_t> encode_padded(std::string_view text) const {
        return encode_weighted(text).first;
    }

    int n_vocab() const { return static_cast<int>(vocab_.size()); }
    const std::string& token_text(int32_t id) const { return vocab_.at(static_cast<size_t>(id)); }

  private:
    std::vector<std::string> bpe(const std::string& piece) const;  // piece: byte-encoded UTF-8

    std::vector<std::string> vocab_;                       // id -> symbol text (UTF-8)
    std::unordered_map<std::string, int32_t> token_id_;    // symbol text -> id
    std::unordered_map<std::string, int32_t> merge_rank_;  // "a b" -> rank
    std::string byte_sym_[256];                            // byte -> its unicode symbol (UTF-8)
};

}  // namespace duan::diffusion
