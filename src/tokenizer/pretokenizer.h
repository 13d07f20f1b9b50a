// Pre-tokenizers of byte-level BPE vocabularies: tokenizer.ggml.pre names a list of regexes that
// split the text into words before BPE merges (applied in sequence, each one splitting the
// fragments the previous ones produced; unmatched gaps stay fragments too), as in the reference.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/regex.h"

namespace duan::tok {

struct PreTokenizerSpec {
    std::vector<std::string> regexes;
    bool ignore_merges = false;  // a word that is itself a token is emitted whole (Llama 3)
    bool add_bos = false;        // default for tokenizer.ggml.add_bos_token
    bool no_bos = false;         // the model has no BOS token (chatglm)
};

// The spec for a tokenizer.ggml.pre name ("" and "default" give the default); nullptr if unknown.
const PreTokenizerSpec* find_pretokenizer(std::string_view name);

class PreTokenizer {
  public:
    explicit PreTokenizer(const PreTokenizerSpec& spec);
    // Splits text into words, each returned as its UTF-8 bytes (invalid UTF-8 input becomes
    // U+FFFD first, as in the reference).
    std::vector<std::string> split(std::string_view text) const;

  private:
    std::vector<Regex> regexes_;
};

}  // namespace duan::tok
