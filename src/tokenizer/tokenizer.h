// Tokenizers built from GGUF metadata (tokenizer.ggml.*): SentencePiece style ("llama") and
// byte-level BPE ("gpt2") with the pre-tokenizer named by tokenizer.ggml.pre.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "format/gguf.h"

namespace duan {

using TokenId = int32_t;

// Token attributes as GGUF's tokenizer.ggml.token_type stores them.
enum class TokenType : int32_t {
    UNDEFINED = 0,
    NORMAL = 1,
    UNKNOWN = 2,
    CONTROL = 3,
    USER_DEFINED = 4,
    UNUSED = 5,
    BYTE = 6,
};

class Tokenizer {
  public:
    virtual ~Tokenizer() = default;
    // `where` (the file path) prefixes errors about missing or malformed tokenizer metadata.
    static std::unique_ptr<Tokenizer> from_gguf(const gguf::Metadata& meta,
                                                const std::string& where);

    // add_bos: prepend BOS when the vocabulary says so (tokenizer.ggml.add_bos_token, default by
    // model type); it also appends EOS when tokenizer.ggml.add_eos_token is true (the reference's
    // add_special). parse_special: text of control/user-defined tokens (e.g. "<|im_start|>") maps
    // to those tokens; otherwise it is tokenized as plain text. User-defined tokens (e.g. Qwen's
    // "<think>") are matched even without parse_special, as the reference and HF tokenizers do.
    virtual std::vector<TokenId> encode(std::string_view text, bool add_bos,
                                        bool parse_special) const = 0;
    // The raw bytes of one token (byte tokens become their byte, "▁" becomes a space for SPM,
    // byte-level BPE is un-mapped). Control tokens give "" unless `special`.
    virtual std::string token_to_piece(TokenId id, bool special) const = 0;
    // Concatenated pieces. For SentencePiece vocabularies with the space prefix, the space it added
    // is removed from the first text token (after a leading BOS), so decode(encode(x)) == x.
    std::string decode(const std::vector<TokenId>& ids, bool special = false) const;

    virtual int n_vocab() const = 0;
    virtual std::string model() const = 0;  // "llama" or "gpt2"
    virtual std::string pre() const = 0;    // pre-tokenizer name ("default" if none)
    virtual const std::string& token_text(TokenId id) const = 0;
    virtual TokenType token_type(TokenId id) const = 0;

    TokenId bos() const { return bos_; }
    TokenId eos() const { return eos_; }
    TokenId eot() const { return eot_; }  // -1 if none
    bool add_bos() const { return add_bos_; }
    // End of generation: EOS, EOT, or another token the vocabulary marks as ending a turn.
    bool is_eog(TokenId id) const;
    // Token id for an exact token text, -1 if none.
    virtual TokenId find(std::string_view text) const = 0;

  protected:
    TokenId bos_ = -1, eos_ = -1, eot_ = -1;
    bool add_bos_ = false;
    std::vector<TokenId> eog_;
};

// Streaming detokenizer: push token ids, get back the text that is complete so far. A UTF-8 code
// point split across tokens is held back until its last byte arrives; flush() returns what is left
// (an incomplete sequence at the very end becomes U+FFFD).
class StreamDecoder {
  public:
    explicit StreamDecoder(const Tokenizer& tok) : tok_(tok) {}
    std::string push(TokenId id);
    std::string flush();

  private:
    const Tokenizer& tok_;
    std::string pending_;
};

}  // namespace duan
