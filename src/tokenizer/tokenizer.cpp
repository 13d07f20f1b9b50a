// Shared vocabulary handling (special ids, end-of-generation set, special-token partitioning,
// pieces), the factory, and the streaming decoder.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

namespace duan {

namespace {

// Token texts that end a turn; the first one present also becomes EOT if the file names none
// (the reference's auto-detection, in its priority order).
constexpr const char* kEotTexts[] = {
    "<|eot_id|>",        "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|end_of_text|>",   "<EOT>",      "_<EOT>",  "[EOT]",         "<｜end▁of▁sentence｜>",
    "<end_of_utterance>"};
constexpr const char* kEogTexts[] = {"<|eot_id|>",
                                     "<|im_end|>",
                                     "<|end|>",
                                     "<|return|>",
                                     "<|call|>",
                                     "<|flush|>",
                                     "<|calls|>",
                                     "<end_of_turn>",
                                     "<|endoftext|>",
                                     "</s>",
                                     "<|eom_id|>",
                                     "<EOT>",
                                     "_<EOT>",
                                     "[EOT]",
                                     "[EOS]",
                                     "<|end_of_text|>",
                                     "<end_of_utterance>",
                                     "<eos>",
                                     "<turn|>",
                                     "<|tool_response>",
                                     "<｜end▁of▁sentence｜>"};

bool is_c_space(char c) {
    return std::isspace(static_cast<unsigned char>(c)) != 0;
}

}  // namespace

namespace tok {

namespace {
uint64_t hash_text(std::string_view s) {
    return std::hash<std::string_view>{}(s);
}
uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}
}  // namespace

bool TokenIndex::build(const std::vector<TokenData>& tokens, int32_t* dup_a, int32_t* dup_b) {
    tokens_ = &tokens;
    size_t cap = 16;
    while (cap < tokens.size() * 2) cap <<= 1;
    slots_.assign(cap, 0);
    mask_ = cap - 1;
    for (size_t i = 0; i < tokens.size(); i++) {
        const uint64_t h = hash_text(tokens[i].text);
        const uint64_t tag = h >> 32;
        for (uint64_t s = h & mask_;; s = (s + 1) & mask_) {
            const uint64_t e = slots_[s];
            if (e == 0) {
                slots_[s] = (tag << 32) | (i + 1);
                break;
            }
            const uint32_t id = static_cast<uint32_t>(e) - 1;
            if ((e >> 32) == tag && tokens[id].text == tokens[i].text) {
                *dup_a = static_cast<int32_t>(id);
                *dup_b = static_cast<int32_t>(i);
                return false;
            }
        }
    }
    return true;
}

int32_t TokenIndex::find(std::string_view text) const {
    if (slots_.empty()) return -1;
    const uint64_t h = hash_text(text);
    const uint64_t tag = h >> 32;
    for (uint64_t s = h & mask_;; s = (s + 1) & mask_) {
        const uint64_t e = slots_[s];
        if (e == 0) return -1;
        const uint32_t id = static_cast<uint32_t>(e) - 1;
        if ((e >> 32) == tag && (*tokens_)[id].text == text) return static_cast<int32_t>(id);
    }
}

void PairMap::reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    if (cap <= slots_.size()) return;
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(cap, Slot{~uint64_t{0}, {0, 0}});
    mask_ = cap - 1;
    size_ = 0;
    for (const Slot& s : old)
        if (s.key != ~uint64_t{0})
            insert(static_cast<uint32_t>(s.key >> 32), static_cast<uint32_t>(s.key), s.v);
}

void PairMap::grow() {
    reserve(slots_.empty() ? 8 : slots_.size());
}

void PairMap::insert(uint32_t a, uint32_t b, Value v) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    const uint64_t key = (uint64_t{a} << 32) | b;
    for (uint64_t s = mix64(key) & mask_;; s = (s + 1) & mask_) {
        if (slots_[s].key == key) return;
        if (slots_[s].key == ~uint64_t{0}) {
            slots_[s] = {key, v};
            size_++;
            return;
        }
    }
}

const PairMap::Value* PairMap::find(uint32_t a, uint32_t b) const {
    if (slots_.empty()) return nullptr;
    const uint64_t key = (uint64_t{a} << 32) | b;
    for (uint64_t s = mix64(key) & mask_;; s = (s + 1) & mask_) {
        if (slots_[s].key == key) return &slots_[s].v;
        if (slots_[s].key == ~uint64_t{0}) return nullptr;
    }
}

int VocabTokenizer::parse_byte_token(const std::string& t) {
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        const char c = t[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    return v;
}

void VocabTokenizer::load_vocab(const gguf::Metadata& meta, const std::string& where,
                                TokenId def_bos, TokenId def_eos, TokenId def_unk,
                                bool def_add_bos) {
    const auto* texts = meta.get_strings("tokenizer.ggml.tokens");
    if (!texts) fail(where, ": missing tokenizer.ggml.tokens (a string array)");
    const size_t n = texts->size();
    if (n == 0) fail(where, ": tokenizer.ggml.tokens is empty");
    if (n > (size_t{1} << 30))
        fail(where, ": tokenizer.ggml.tokens has too many entries (", n, ")");
    const auto scores = meta.get_f32s("tokenizer.ggml.scores");
    if (scores && scores->size() < n)
        fail(where, ": tokenizer.ggml.scores has ", scores->size(), " entries for ", n, " tokens");
    const auto types = meta.get_i32s("tokenizer.ggml.token_type");
    if (types && types->size() < n)
        fail(where, ": tokenizer.ggml.token_type has ", types->size(), " entries for ", n,
             " tokens");

    tokens_.resize(n);
    for (size_t i = 0; i < n; i++) {
        TokenData& t = tokens_[i];
        t.text = (*texts)[i];
        if (t.text.empty()) t.text = "[EMPTY_" + std::to_string(i) + "]";
        if (scores) t.score = (*scores)[i];
        if (types) {
            const int32_t ty = (*types)[i];
            t.type = ty >= 1 && ty <= 6 ? static_cast<TokenType>(ty) : TokenType::UNDEFINED;
        }
    }
    if (int32_t a, b; !index_.build(tokens_, &a, &b))
        fail(where, ": duplicate token in tokenizer.ggml.tokens: '", tokens_[b].text, "' has ids ",
             a, " and ", b);

    // Special ids: the model type's defaults (dropped when out of range), then the file's keys
    // (ignored when out of range, as the reference does).
    const auto in_range = [&](int64_t id) { return id >= 0 && id < static_cast<int64_t>(n); };
    const auto special = [&](const char* key, TokenId def) -> TokenId {
        TokenId id = in_range(def) ? def : -1;
        if (auto v = meta.get_i64(key); v && in_range(*v)) id = static_cast<TokenId>(*v);
        return id;
    };
    bos_ = special("tokenizer.ggml.bos_token_id", def_bos);
    eos_ = special("tokenizer.ggml.eos_token_id", def_eos);
    eot_ = special("tokenizer.ggml.eot_token_id", -1);
    const TokenId eom = special("tokenizer.ggml.eom_token_id", -1);
    unk_ = special("tokenizer.ggml.unknown_token_id", def_unk);

    add_bos_ = meta.get_bool("tokenizer.ggml.add_bos_token").value_or(def_add_bos);
    add_eos_ = meta.get_bool("tokenizer.ggml.add_eos_token").value_or(false);
    if (bos_ < 0) add_bos_ = false;
    if (eos_ < 0) add_eos_ = false;

    // End of generation: known end-of-turn texts (these are control tokens whatever the file says).
    if (eot_ < 0) {
        for (const char* t : kEotTexts)
            if (TokenId id = lookup(t); id >= 0) {
                eot_ = id;
                break;
            }
    }
    for (const char* t : kEogTexts) {
        if (TokenId id = lookup(t); id >= 0) {
            eog_.push_back(id);
            tokens_[id].type = TokenType::CONTROL;
        }
    }
    if (eot_ >= 0 && tokens_[eot_].type != TokenType::CONTROL &&
        std::find(std::begin(kEotTexts), std::end(kEotTexts), tokens_[eot_].text) !=
            std::end(kEotTexts))
        tokens_[eot_].type = TokenType::CONTROL;
    for (TokenId id : {eos_, eot_, eom})
        if (id >= 0) eog_.push_back(id);
    std::sort(eog_.begin(), eog_.end());
    eog_.erase(std::unique(eog_.begin(), eog_.end()), eog_.end());

    for (size_t i = 0; i < n; i++) {
        const TokenType ty = tokens_[i].type;
        if (ty == TokenType::CONTROL || ty == TokenType::USER_DEFINED || ty == TokenType::UNKNOWN)
            specials_.push_back(static_cast<TokenId>(i));
    }
    std::stable_sort(specials_.begin(), specials_.end(), [&](TokenId a, TokenId b) {
        return tokens_[a].text.size() > tokens_[b].text.size();
    });

    // Phi-3's special tokens swallow the whitespace after them (the reference keys this on the
    // model name; the GGUF has no per-token strip attributes).
    std::string name = meta.get_string("general.name").value_or("");
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
        for (TokenId id : specials_) tokens_[id].rstrip = true;
        if (TokenId id = lookup("</s>"); id >= 0) tokens_[id].rstrip = true;
        for (const char* t : {"<unk>", "<s>", "<|endoftext|>"})
            if (TokenId id = lookup(t); id >= 0) tokens_[id].rstrip = false;
    }
}

const std::string& VocabTokenizer::token_text(TokenId id) const {
    static const std::string empty;
    return id >= 0 && id < n_vocab() ? tokens_[id].text : empty;
}

TokenType VocabTokenizer::token_type(TokenId id) const {
    return id >= 0 && id < n_vocab() ? tokens_[id].type : TokenType::UNDEFINED;
}

TokenId VocabTokenizer::find(std::string_view text) const {
    return lookup(text);
}

std::vector<Fragment> VocabTokenizer::partition(std::string_view text, bool parse_special) const {
    std::vector<Fragment> frags;
    if (text.empty()) return frags;
    frags.push_back({-1, text});
    std::vector<Fragment> next;
    for (TokenId id : specials_) {
        const TokenData& tok = tokens_[id];
        if (!parse_special && tok.type != TokenType::USER_DEFINED) continue;
        next.clear();
        bool changed = false;
        for (const Fragment& f : frags) {
            if (f.token >= 0) {
                next.push_back(f);
                continue;
            }
            std::string_view rest = f.text;
            while (true) {
                const size_t m = rest.find(tok.text);
                if (m == std::string_view::npos) break;
                changed = true;
                std::string_view left = rest.substr(0, m);
                if (tok.lstrip)
                    while (!left.empty() && is_c_space(left.back())) left.remove_suffix(1);
                if (!left.empty()) next.push_back({-1, left});
                next.push_back({id, {}});
                rest.remove_prefix(m + tok.text.size());
                if (tok.rstrip)
                    while (!rest.empty() && is_c_space(rest.front())) rest.remove_prefix(1);
            }
            if (!rest.empty()) next.push_back({-1, rest});
        }
        if (changed) frags.swap(next);
    }
    return frags;
}

std::vector<TokenId> VocabTokenizer::encode(std::string_view text, bool add_bos,
                                            bool parse_special) const {
    // Positions are 32-bit inside the matchers; 1 GiB of text is far beyond any context anyway.
    if (text.size() > (size_t{1} << 30))
        fail("tokenizer: text of ", text.size(), " bytes is too long to tokenize (limit 1 GiB)");
    std::vector<TokenId> out;
    out.reserve(text.size() / 3 + 4);
    const bool add_special = add_bos;
    if (add_special && add_bos_) out.push_back(bos_);
    bool prev_special = true;
    for (const Fragment& f : partition(text, parse_special)) {
        if (f.token >= 0) {
            out.push_back(f.token);
            prev_special = true;
        } else {
            encode_text(f.text, prev_special, out);
            prev_special = false;
        }
    }
    if (add_special && add_eos_) out.push_back(eos_);
    return out;
}

std::string VocabTokenizer::token_to_piece(TokenId id, bool special) const {
    if (id < 0 || id >= n_vocab()) return {};
    const TokenData& t = tokens_[id];
    switch (t.type) {
        case TokenType::CONTROL:
        case TokenType::UNKNOWN:
            return special ? t.text : std::string();
        case TokenType::USER_DEFINED:
            return t.text;
        case TokenType::NORMAL:
            return normal_piece(t.text);
        case TokenType::BYTE: {
            const int b = parse_byte_token(t.text);
            return b < 0 ? std::string() : std::string(1, static_cast<char>(b));
        }
        default:
            return {};
    }
}

}  // namespace tok

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const gguf::Metadata& meta,
                                                const std::string& where) {
    const auto model = meta.get_string("tokenizer.ggml.model");
    if (!model) fail(where, ": missing tokenizer.ggml.model");
    if (*model == "llama") return tok::make_spm(meta, where);
    if (*model == "gpt2") return tok::make_bpe(meta, where);
    fail(where, ": unsupported tokenizer.ggml.model '", *model,
         "' (supported: llama = SentencePiece, gpt2 = byte-level BPE)");
}

std::string Tokenizer::decode(const std::vector<TokenId>& ids, bool special) const {
    std::string out;
    // SentencePiece adds a space before the text; drop it from the first text token (after BOS).
    const auto* vt = dynamic_cast<const tok::VocabTokenizer*>(this);
    bool strip = vt && vt->add_space_prefix();
    for (size_t i = 0; i < ids.size(); i++) {
        std::string piece = token_to_piece(ids[i], special);
        if (strip && i == 0 && ids[i] == bos_ && bos_ >= 0) {
            out += piece;
            continue;
        }
        if (strip && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
        strip = false;
        out += piece;
    }
    return out;
}

bool Tokenizer::is_eog(TokenId id) const {
    return id >= 0 && std::binary_search(eog_.begin(), eog_.end(), id);
}

std::string StreamDecoder::push(TokenId id) {
    pending_ += tok_.token_to_piece(id, false);
    const size_t n = unicode::complete_utf8_prefix(pending_);
    std::string out = pending_.substr(0, n);
    pending_.erase(0, n);
    return out;
}

std::string StreamDecoder::flush() {
    std::string out;
    if (!pending_.empty()) unicode::append_utf8(out, unicode::kReplacement);
    pending_.clear();
    return out;
}

}  // namespace duan
