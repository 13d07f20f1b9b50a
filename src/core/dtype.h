// Tensor element types, numbered exactly as GGUF/ggml numbers them (the file format stores these ids).
// Block layouts live in kernels/blocks.h; this header only knows sizes, so core/ and format/ can
// validate tensors without depending on the kernels.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace duan {

enum class DType : uint32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    BF16 = 30,
};

struct DTypeInfo {
    DType type;
    const char* name;    // "f32", "q4_0", … (lower case, as GGUF tools print them)
    int64_t block_size;  // elements per block (1 for plain types)
    size_t block_bytes;  // bytes per block
};

// nullopt for ids duan does not know (the GGUF reader turns that into an error naming the tensor).
std::optional<DTypeInfo> dtype_info(uint32_t id);
const DTypeInfo& dtype_info(DType t);
inline const char* dtype_name(DType t) { return dtype_info(t).name; }
// Parses "q4_0", "Q4_0", "f16", … ; nullopt if unknown.
std::optional<DType> dtype_from_name(std::string_view name);
// Bytes of a row of n elements; n must be a multiple of the block size (checked by callers).
inline size_t dtype_row_bytes(DType t, int64_t n) {
    const auto& i = dtype_info(t);
    return static_cast<size_t>(n / i.block_size) * i.block_bytes;
}

}  // namespace duan
