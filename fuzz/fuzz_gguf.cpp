// libFuzzer target for the GGUF parser: any input must either parse or raise duan::Error — never
// crash, read out of bounds, or allocate without bound. After a successful parse, every tensor's
// bytes are touched so an out-of-range data pointer shows up under ASan.
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
//     fuzz/fuzz_gguf.cpp src/format/gguf.cpp src/core/dtype.cpp src/core/mapped_file.cpp \
//     -o fuzz_gguf && ./fuzz_gguf -max_total_time=60 -rss_limit_mb=1024 corpus/
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "format/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        auto f = duan::gguf::File::parse(data, size, "fuzz.gguf");
        unsigned sum = 0;
        for (const auto& t : f->tensors()) {
            if (t.n_bytes) sum += t.data[0] + t.data[t.n_bytes - 1];
        }
        // The typed getters must also fail cleanly on whatever types the input declares.
        const auto& m = f->meta();
        for (const auto& [k, v] : m.items()) {
            sum += static_cast<unsigned>(v.array_size());
            try {
                sum += m.get_u32(k).value_or(0);
            } catch (const duan::Error&) {
            }
            try {
                sum += static_cast<unsigned>(m.get_f32(k).value_or(0.f) != 0.f);
            } catch (const duan::Error&) {
            }
            try {
                if (auto xs = m.get_i32s(k)) sum += static_cast<unsigned>(xs->size());
            } catch (const duan::Error&) {
            }
            try {
                if (auto xs = m.get_f32s(k)) sum += static_cast<unsigned>(xs->size());
            } catch (const duan::Error&) {
            }
        }
        volatile unsigned sink = sum;
        (void)sink;
    } catch (const duan::Error&) {
    }
    return 0;
}
