#include "core/dtype.h"

#include <array>
#include <cctype>
#include <string>

#include "core/error.h"

namespace duan {
namespace {
// QK_K = 256 super-blocks for the K-quants; sizes follow the GGUF block layouts.
constexpr std::array<DTypeInfo, 20> kTypes = {{
    {DType::F32, "f32", 1, 4},
    {DType::F16, "f16", 1, 2},
    {DType::Q4_0, "q4_0", 32, 2 + 16},
    {DType::Q4_1, "q4_1", 32, 2 + 2 + 16},
    {DType::Q5_0, "q5_0", 32, 2 + 4 + 16},
    {DType::Q5_1, "q5_1", 32, 2 + 2 + 4 + 16},
    {DType::Q8_0, "q8_0", 32, 2 + 32},
    {DType::Q8_1, "q8_1", 32, 4 + 32},
    {DType::Q2_K, "q2_k", 256, 256 / 16 + 256 / 4 + 2 + 2},
    {DType::Q3_K, "q3_k", 256, 256 / 8 + 256 / 4 + 12 + 2},
    {DType::Q4_K, "q4_k", 256, 2 + 2 + 12 + 256 / 2},
    {DType::Q5_K, "q5_k", 256, 2 + 2 + 12 + 256 / 8 + 256 / 2},
    {DType::Q6_K, "q6_k", 256, 256 / 2 + 256 / 4 + 256 / 16 + 2},
    {DType::Q8_K, "q8_k", 256, 4 + 256 + 256 / 16 * 2},
    {DType::I8, "i8", 1, 1},
    {DType::I16, "i16", 1, 2},
    {DType::I32, "i32", 1, 4},
    {DType::I64, "i64", 1, 8},
    {DType::F64, "f64", 1, 8},
    {DType::BF16, "bf16", 1, 2},
}};
}  // namespace

std::optional<DTypeInfo> dtype_info(uint32_t id) {
    for (const auto& t : kTypes)
        if (static_cast<uint32_t>(t.type) == id) return t;
    return std::nullopt;
}

const DTypeInfo& dtype_info(DType t) {
    for (const auto& i : kTypes)
        if (i.type == t) return i;
    fail("internal: unknown dtype id ", static_cast<uint32_t>(t));
}

std::optional<DType> dtype_from_name(std::string_view name) {
    std::string lower(name);
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const auto& t : kTypes)
        if (lower == t.name) return t.type;
    return std::nullopt;
}

}  // namespace duan
