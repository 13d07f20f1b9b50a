// SentencePiece-style tokenizer ("llama"): spaces become U+2581 "▁" (with a space prefixed to
// text that starts the input or follows a special token, tokenizer.ggml.add_space_prefix), then
// adjacent symbols (initially UTF-8 characters) are merged greedily, highest token score first,
// while the merged text is a token. Symbols left that are not tokens fall back to <0xXX> byte
// tokens (or the unknown token when the vocabulary has no byte tokens).
#include <queue>

#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

namespace duan::tok {

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581

class SpmTokenizer final : public VocabTokenizer {
  public:
    SpmTokenizer(const gguf::Metadata& meta, const std::string& where) {
        model_ = "llama";
        pre_ = "default";
        load_vocab(meta, where, /*bos=*/1, /*eos=*/2, /*unk=*/0, /*add_bos=*/true);
        add_space_prefix_ = meta.get_bool("tokenizer.ggml.add_space_prefix").value_or(true);
        for (int b = 0; b < 256; b++) {
            static const char* hex = "0123456789ABCDEF";
            const char buf[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
            TokenId id = lookup(buf);
            if (id < 0) id = lookup(std::string(1, static_cast<char>(b)));
            byte_tokens_[b] = id >= 0 ? id : unk_;
        }
    }

  protected:
    void encode_text(std::string_view raw, bool prev_special,
                     std::vector<TokenId>& out) const override {
        std::string text;
        text.reserve(raw.size() + 8);
        if (add_space_prefix_ && prev_special) text += kSpace;
        for (char c : raw) {
            if (c == ' ')
                text += kSpace;
            else
                text += c;
        }
        if (text.empty()) return;

        struct Sym {
            int prev, next;
            uint32_t off, n;
        };
        std::vector<Sym> syms;
        syms.reserve(text.size());
        for (size_t off = 0; off < text.size();) {
            const size_t n =
                std::min(unicode::utf8_len(static_cast<uint8_t>(text[off])), text.size() - off);
            const int i = static_cast<int>(syms.size());
            syms.push_back({i - 1, off + n == text.size() ? -1 : i + 1, static_cast<uint32_t>(off),
                            static_cast<uint32_t>(n)});
            off += n;
        }

        struct Bigram {
            int left, right;
            float score;
            uint32_t size;
        };
        // Highest score first; ties go to the leftmost pair.
        const auto cmp = [](const Bigram& a, const Bigram& b) {
            return a.score < b.score || (a.score == b.score && a.left > b.left);
        };
        std::priority_queue<Bigram, std::vector<Bigram>, decltype(cmp)> queue(cmp);
        const auto try_add = [&](int l, int r) {
            if (l < 0 || r < 0) return;
            const uint32_t size = syms[l].n + syms[r].n;
            const TokenId id = lookup(std::string_view(text).substr(syms[l].off, size));
            if (id < 0) return;
            queue.push({l, r, tokens_[id].score, size});
        };
        for (int i = 1; i < static_cast<int>(syms.size()); i++) try_add(i - 1, i);

        while (!queue.empty()) {
            const Bigram bg = queue.top();
            queue.pop();
            Sym& l = syms[bg.left];
            Sym& r = syms[bg.right];
            if (l.n == 0 || r.n == 0 || l.n + r.n != bg.size) continue;  // stale
            l.n += r.n;
            r.n = 0;
            l.next = r.next;
            if (r.next >= 0) syms[r.next].prev = bg.left;
            try_add(l.prev, bg.left);
            try_add(bg.left, l.next);
        }

        for (int i = 0; i != -1; i = syms[i].next) {
            const std::string_view piece = std::string_view(text).substr(syms[i].off, syms[i].n);
            const TokenId id = lookup(piece);
            if (id >= 0) {
                out.push_back(id);
                continue;
            }
            for (char c : piece) {
                const TokenId b = byte_tokens_[static_cast<uint8_t>(c)];
                if (b >= 0) out.push_back(b);
            }
        }
    }

    std::string normal_piece(const std::string& text) const override {
        std::string out;
        out.reserve(text.size());
        for (size_t i = 0; i < text.size();) {
            if (text.compare(i, kSpace.size(), kSpace) == 0) {
                out += ' ';
                i += kSpace.size();
            } else {
                out += text[i++];
            }
        }
        return out;
    }

  private:
    TokenId byte_tokens_[256];
};

}  // namespace

std::unique_ptr<Tokenizer> make_spm(const gguf::Metadata& meta, const std::string& where) {
    return std::make_unique<SpmTokenizer>(meta, where);
}

}  // namespace duan::tok
