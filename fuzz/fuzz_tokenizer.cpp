// libFuzzer target for the tokenizers: arbitrary bytes (invalid UTF-8 included) must encode to
// in-range ids, and decoding (whole or streamed) must not crash. The vocabulary is loaded once:
// $DUAN_FUZZ_VOCAB, else $DUAN_TESTDATA/vocab/ggml-vocab-qwen2.gguf, else DUAN_FUZZ_VOCAB_DEFAULT
// (relative to the repository root). Try other pre-tokenizers with e.g.
// DUAN_FUZZ_VOCAB=../shared/testdata/vocab/ggml-vocab-deepseek-llm.gguf.
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Isrc fuzz/fuzz_tokenizer.cpp \
//     src/tokenizer/*.cpp src/format/gguf.cpp src/core/*.cpp -o fuzz_tokenizer
//   ./fuzz_tokenizer -max_total_time=60 -max_len=4096 corpus/
// First input byte: bit 0 add_bos, bit 1 parse_special, bit 2 render special tokens on decode.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "format/gguf.h"
#include "tokenizer/tokenizer.h"

#ifndef DUAN_FUZZ_VOCAB_DEFAULT
#define DUAN_FUZZ_VOCAB_DEFAULT "../shared/testdata/vocab/ggml-vocab-qwen2.gguf"
#endif

namespace {

const duan::Tokenizer& tokenizer() {
    static std::unique_ptr<duan::gguf::File> file;
    static std::unique_ptr<duan::Tokenizer> tok = [] {
        std::string path = DUAN_FUZZ_VOCAB_DEFAULT;
        if (const char* td = std::getenv("DUAN_TESTDATA"); td && *td)
            path = std::string(td) + "/vocab/ggml-vocab-qwen2.gguf";
        if (const char* v = std::getenv("DUAN_FUZZ_VOCAB"); v && *v) path = v;
        file = duan::gguf::File::open(path);
        std::fprintf(stderr, "fuzz_tokenizer: vocabulary %s\n", path.c_str());
        return duan::Tokenizer::from_gguf(file->meta(), path);
    }();
    return *tok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const duan::Tokenizer& tok = tokenizer();
    if (size == 0) return 0;
    const uint8_t flags = data[0];
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    const auto ids = tok.encode(text, flags & 1, flags & 2);
    for (duan::TokenId id : ids)
        if (id < 0 || id >= tok.n_vocab()) __builtin_trap();
    const std::string whole = tok.decode(ids, flags & 4);
    duan::StreamDecoder stream(tok);
    std::string streamed;
    for (duan::TokenId id : ids) streamed += stream.push(id);
    streamed += stream.flush();
    // Streaming holds back only incomplete UTF-8, so it never produces more bytes than whole
    // decoding plus one replacement character.
    if (streamed.size() > whole.size() + 8 + ids.size()) __builtin_trap();
    return 0;
}
