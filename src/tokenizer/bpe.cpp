// Byte-level BPE tokenizer ("gpt2"): the pre-tokenizer named by tokenizer.ggml.pre splits the text
// into words; each word's bytes are mapped to GPT-2's printable alphabet, then adjacent symbols
// (initially single characters) are merged by the rank of the pair in tokenizer.ggml.merges,
// lowest rank first, as the reference does.
#include <queue>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

namespace duan::tok {

namespace {

class BpeTokenizer final : public VocabTokenizer {
  public:
    BpeTokenizer(const gguf::Metadata& meta, const std::string& where) {
        model_ = "gpt2";
        pre_ = meta.get_string("tokenizer.ggml.pre").value_or("default");
        if (pre_.empty()) pre_ = "default";
        const PreTokenizerSpec* spec = find_pretokenizer(pre_);
        if (!spec) fail(where, ": unsupported pre-tokenizer tokenizer.ggml.pre = '", pre_, "'");
        pre_tok_ = std::make_unique<PreTokenizer>(*spec);
        ignore_merges_ = spec->ignore_merges;
        // The reference's BPE defaults: BOS = EOS = 11 (Falcon's <|endoftext|>), no UNK.
        load_vocab(meta, where, spec->no_bos ? -1 : 11, 11, -1, spec->add_bos);

        const auto* merges = meta.get_strings("tokenizer.ggml.merges");
        if (!merges) fail(where, ": missing tokenizer.ggml.merges (a string array)");
        if (merges->size() > (size_t{1} << 30))
            fail(where, ": tokenizer.ggml.merges has too many entries (", merges->size(), ")");
        ranks_.reserve(merges->size());
        std::string joined;
        for (size_t i = 0; i < merges->size(); i++) {
            const std::string& m = (*merges)[i];
            const size_t sp = m.find(' ', 1);
            if (sp == std::string::npos) continue;  // malformed: can never apply
            const std::string_view left = std::string_view(m).substr(0, sp);
            const std::string_view right = std::string_view(m).substr(sp + 1);
            joined.assign(left);
            joined += right;
            const int32_t l = symbol_id(left, true), r = symbol_id(right, true);
            const int32_t res = symbol_id(joined, true);
            ranks_.insert(static_cast<uint32_t>(l), static_cast<uint32_t>(r),
                          {static_cast<int32_t>(i), res});  // first occurrence wins
        }
    }

  protected:
    void encode_text(std::string_view text, bool /*prev_special*/,
                     std::vector<TokenId>& out) const override {
        std::string enc;
        for (const std::string& word : pre_tok_->split(text)) {
            enc.clear();
            for (char c : word)
                unicode::append_utf8(enc, unicode::byte_to_cp(static_cast<uint8_t>(c)));
            encode_word(enc, out);
        }
    }

    std::string normal_piece(const std::string& text) const override {
        std::string out;
        out.reserve(text.size());
        for (size_t pos = 0; pos < text.size();) {
            const size_t start = pos;
            const uint32_t cp = unicode::decode_utf8(text, &pos);
            const int b = unicode::cp_to_byte(cp);
            if (b >= 0)
                out += static_cast<char>(b);
            else
                out.append(text, start, pos - start);  // not in the byte alphabet: keep as is
        }
        return out;
    }

  private:
    std::unique_ptr<PreTokenizer> pre_tok_;
    // Merges work on symbol ids: token ids, plus ids from n_vocab() up for merge parts or results
    // that are not tokens (real vocabularies have none; they keep the merge semantics exact on
    // text, as the reference applies merges to strings).
    PairMap ranks_;
    std::unordered_map<std::string, int32_t> extra_ids_;
    bool ignore_merges_ = false;

    int32_t symbol_id(std::string_view text, bool create) {
        if (TokenId id = lookup(text); id >= 0) return id;
        auto it = extra_ids_.find(std::string(text));
        if (it != extra_ids_.end()) return it->second;
        if (!create) return -1;
        const int32_t id = n_vocab() + static_cast<int32_t>(extra_ids_.size());
        extra_ids_.emplace(std::string(text), id);
        return id;
    }
    int32_t symbol_id(std::string_view text) const {
        if (TokenId id = lookup(text); id >= 0) return id;
        if (extra_ids_.empty()) return -1;
        auto it = extra_ids_.find(std::string(text));
        return it == extra_ids_.end() ? -1 : it->second;
    }

    void encode_word(std::string_view word, std::vector<TokenId>& out) const {
        if (word.empty()) return;
        if (ignore_merges_) {
            if (TokenId id = lookup(word); id >= 0) {
                out.push_back(id);
                return;
            }
        }
        struct Sym {
            int prev, next;
            uint32_t off, n;
            int32_t id;  // symbol id, -1 if the text is neither a token nor a merge part
        };
        std::vector<Sym> syms;
        syms.reserve(word.size());
        for (size_t off = 0; off < word.size();) {
            const size_t n =
                std::min(unicode::utf8_len(static_cast<uint8_t>(word[off])), word.size() - off);
            const int i = static_cast<int>(syms.size());
            syms.push_back({i - 1, off + n == word.size() ? -1 : i + 1, static_cast<uint32_t>(off),
                            static_cast<uint32_t>(n), symbol_id(word.substr(off, n))});
            off += n;
        }
        struct Bigram {
            int left, right;
            int rank;
            uint32_t size;
            int32_t result;
        };
        // Lowest rank first; ties go to the leftmost pair.
        const auto cmp = [](const Bigram& a, const Bigram& b) {
            return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
        };
        std::priority_queue<Bigram, std::vector<Bigram>, decltype(cmp)> queue(cmp);
        const auto try_add = [&](int l, int r) {
            if (l < 0 || r < 0 || syms[l].id < 0 || syms[r].id < 0) return;
            const PairMap::Value* v =
                ranks_.find(static_cast<uint32_t>(syms[l].id), static_cast<uint32_t>(syms[r].id));
            if (!v) return;
            queue.push({l, r, v->rank, syms[l].n + syms[r].n, v->result});
        };
        for (int i = 1; i < static_cast<int>(syms.size()); i++) try_add(i - 1, i);
        while (!queue.empty()) {
            const Bigram bg = queue.top();
            queue.pop();
            Sym& l = syms[bg.left];
            Sym& r = syms[bg.right];
            if (l.n == 0 || r.n == 0 || l.n + r.n != bg.size) continue;  // stale
            l.n += r.n;
            l.id = bg.result;
            r.n = 0;
            l.next = r.next;
            if (r.next >= 0) syms[r.next].prev = bg.left;
            try_add(l.prev, bg.left);
            try_add(bg.left, l.next);
        }
        for (int i = 0; i != -1; i = syms[i].next) {
            const std::string_view piece = word.substr(syms[i].off, syms[i].n);
            if (syms[i].id >= 0 && syms[i].id < n_vocab()) {
                out.push_back(syms[i].id);
                continue;
            }
            // Not a token: each byte of the (mapped) text on its own, if that is a token (the
            // reference drops bytes that are not).
            for (char c : piece)
                if (TokenId id = lookup(std::string_view(&c, 1)); id >= 0) out.push_back(id);
        }
    }
};

}  // namespace

std::unique_ptr<Tokenizer> make_bpe(const gguf::Metadata& meta, const std::string& where) {
    return std::make_unique<BpeTokenizer>(meta, where);
}

}  // namespace duan::tok
