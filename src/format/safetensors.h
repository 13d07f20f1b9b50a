// Reader for the safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets:[begin,end]}, "__metadata__": {str: str}}, then the raw
// little-endian tensor bytes. The file is memory-mapped; tensors are views into the map.
//
// Validation (every error names the file and, where there is one, the tensor): header length past
// the end of the file, JSON that does not parse or has the wrong shape, unknown dtype, negative or
// overflowing shapes, data_offsets past the end / reversed (begin > end) / overlapping another
// tensor, duplicate names, and a byte size that does not equal prod(shape) * element size. Gaps
// between tensors are tolerated (some writers align data).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/mapped_file.h"

namespace duan::safetensors {

enum class DType {
    BOOL,
    U8,
    I8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F16,
    BF16,
    F32,
    F64,
    F8_E4M3,
    F8_E5M2
};

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // as the header spells it: "F32", "BF16", …
std::optional<DType> dtype_from_name(std::string_view s);

struct TensorInfo {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;  // outermost first, as PyTorch writes it
    uint64_t begin = 0;          // byte offsets relative to the start of the data section
    uint64_t end = 0;
    const uint8_t* data = nullptr;  // points into the mapped file
    int64_t numel() const;
    size_t nbytes() const { return static_cast<size_t>(end - begin); }
};

class File {
  public:
    // Maps and validates `path`; throws duan::Error on any problem.
    explicit File(const std::string& path);
    // Parses an in-memory image (used by tests and by callers that already hold the bytes); `where`
    // names it in errors. The bytes must outlive the File.
    File(const uint8_t* bytes, size_t size, std::string where);

    const std::string& path() const { return where_; }
    const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in header order
    const TensorInfo* find(std::string_view name) const;                 // nullptr if absent
    const TensorInfo& get(std::string_view name) const;                  // throws if absent
    const std::map<std::string, std::string>& metadata() const { return metadata_; }

    // Copies a tensor to f32 (F32, F16, BF16, F64, I*, U* convert; others throw).
    std::vector<float> to_f32(const TensorInfo& t) const;

  private:
    void parse(const uint8_t* bytes, size_t size);

    MappedFile map_;
    std::string where_;
    std::vector<TensorInfo> tensors_;
    std::map<std::string, size_t, std::less<>> index_;
    std::map<std::string, std::string> metadata_;
};

}  // namespace duan::safetensors
