// Internal: the vocabulary shared by both tokenizer kinds (tokens, scores, types, special ids,
// special-token partitioning, pieces) and the two concrete tokenizers' factories.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace duan::tok {

struct TokenData {
    std::string text;
    float score = 0;
    TokenType type = TokenType::NORMAL;
    bool lstrip = false, rstrip = false;  // trim spaces next to this special token's matches
};

// Text -> token id: open addressing over the token texts (one flat allocation; building it for a
// 150k vocabulary takes a few ms, unlike a node-based map).
class TokenIndex {
  public:
    // Returns false (and leaves *dup set to the earlier id) if two tokens have the same text.
    bool build(const std::vector<TokenData>& tokens, int32_t* dup_a, int32_t* dup_b);
    int32_t find(std::string_view text) const;

  private:
    const std::vector<TokenData>* tokens_ = nullptr;
    std::vector<uint64_t> slots_;  // (hash32 << 32) | (id + 1); 0 = empty
    uint64_t mask_ = 0;
};

// (a, b) -> value for 32-bit a and b, open addressing. Used for BPE merge ranks.
class PairMap {
  public:
    struct Value {
        int32_t rank, result;
    };
    void reserve(size_t n);
    // Keeps the first value for a key.
    void insert(uint32_t a, uint32_t b, Value v);
    const Value* find(uint32_t a, uint32_t b) const;

  private:
    struct Slot {
        uint64_t key;
        Value v;
    };
    std::vector<Slot> slots_;  // key ~0 = empty
    uint64_t mask_ = 0;
    size_t size_ = 0;
    void grow();
};

// A piece of the input after special-token partitioning: either a token or raw text.
struct Fragment {
    TokenId token = -1;  // -1: raw text
    std::string_view text;
};

class VocabTokenizer : public Tokenizer {
  public:
    std::vector<TokenId> encode(std::string_view text, bool add_bos,
                                bool parse_special) const override;
    std::string token_to_piece(TokenId id, bool special) const override;
    int n_vocab() const override { return static_cast<int>(tokens_.size()); }
    std::string model() const override { return model_; }
    std::string pre() const override { return pre_; }
    const std::string& token_text(TokenId id) const override;
    TokenType token_type(TokenId id) const override;
    TokenId find(std::string_view text) const override;

    bool add_space_prefix() const { return add_space_prefix_; }
    TokenId unk() const { return unk_; }
    // Splits text around special tokens (longest first, as the reference): CONTROL and UNKNOWN
    // tokens only with parse_special, USER_DEFINED always.
    std::vector<Fragment> partition(std::string_view text, bool parse_special) const;

  protected:
    std::vector<TokenData> tokens_;
    TokenIndex index_;
    std::vector<TokenId> specials_;  // CONTROL/USER_DEFINED/UNKNOWN ids, longest text first
    std::string model_, pre_;
    TokenId unk_ = -1;
    bool add_eos_ = false;
    bool add_space_prefix_ = false;

    // Reads tokens/scores/types and the special ids; `def_*` are the model type's defaults.
    void load_vocab(const gguf::Metadata& meta, const std::string& where, TokenId def_bos,
                    TokenId def_eos, TokenId def_unk, bool def_add_bos);
    TokenId lookup(std::string_view text) const { return index_.find(text); }
    // Byte value of a "<0xXX>" token, -1 if the text is not one.
    static int parse_byte_token(const std::string& text);

    // Tokenizes one raw-text fragment; prev_special: it starts the input or follows a token.
    virtual void encode_text(std::string_view text, bool prev_special,
                             std::vector<TokenId>& out) const = 0;
    // Text of a NORMAL token as raw bytes.
    virtual std::string normal_piece(const std::string& text) const = 0;
};

std::unique_ptr<Tokenizer> make_spm(const gguf::Metadata& meta, const std::string& where);
std::unique_ptr<Tokenizer> make_bpe(const gguf::Metadata& meta, const std::string& where);

}  // namespace duan::tok
