// GGUF (v2 and v3) reader over mmap, and the metadata model shared with the writer.
//
// Layout: magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv | n_kv × (string key, u32 type,
// value)
//         | n_tensors × (string name, u32 n_dims, u64 ne[n_dims], u32 dtype, u64 offset)
//         | padding to general.alignment (default 32) | tensor data (offsets relative to here).
// Everything is validated before use; every error names the file, the byte offset and the key or
// tensor concerned (see tests/test_gguf.cpp for the list of rejected inputs).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"

namespace duan::gguf {

enum class ValueType : uint32_t {
    UINT8 = 0,
    INT8 = 1,
    UINT16 = 2,
    INT16 = 3,
    UINT32 = 4,
    INT32 = 5,
    FLOAT32 = 6,
    BOOL = 7,
    STRING = 8,
    ARRAY = 9,
    UINT64 = 10,
    INT64 = 11,
    FLOAT64 = 12,
};
const char* value_type_name(ValueType t);

constexpr uint64_t kDefaultAlignment = 32;                 // when general.alignment is absent
constexpr int kMaxDims = 4;                                // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 8;                          // nesting limit for arrays of arrays
constexpr uint64_t kMaxArrayElements = uint64_t(1) << 24;  // per array; real vocabularies are < 1M

// Validates a tensor shape for `type` (1..kMaxDims dims, each >= 0, element count and byte size
// without overflow, ne[0] a multiple of the block size) and returns its size in bytes; on failure
// returns nullopt and sets *why (shared by the reader and the writer).
std::optional<uint64_t> tensor_n_bytes(DType type, const std::vector<int64_t>& ne,
                                       std::string* why);

// One metadata value. Scalars keep their exact on-disk type; integers are widened into i64/u64,
// floats into f64. Arrays keep their element type; elements of string arrays are in `strs`,
// numeric/bool elements in `nums` (as double: exact for every integer type up to 2^53, which
// covers token types and ids) plus `ints` (exact int64 for integer element types), nested arrays
// in `arr`.
struct Value {
    ValueType type = ValueType::UINT32;
    uint64_t u64 = 0;                         // for unsigned ints and bool
    int64_t i64 = 0;                          // for signed ints
    double f64 = 0;                           // for floats
    std::string str;                          // for STRING
    ValueType elem_type = ValueType::UINT32;  // for ARRAY
    std::vector<std::string> strs;
    std::vector<double> nums;
    std::vector<int64_t> ints;
    std::vector<Value> arr;

    bool is_integer() const;
    bool is_float() const;
    size_t array_size() const;  // element count of an ARRAY, 0 otherwise

    static Value from_u32(uint32_t v);
    static Value from_i32(int32_t v);
    static Value from_u64(uint64_t v);
    static Value from_f32(float v);
    static Value from_bool(bool v);
    static Value from_string(std::string v);
    static Value from_strings(std::vector<std::string> v);
    static Value from_f32s(const std::vector<float>& v);
    static Value from_i32s(const std::vector<int32_t>& v);
};

struct TensorInfo {
    std::string name;
    DType type = DType::F32;
    std::vector<int64_t> ne;  // ne[0] is the row length (fastest dimension), as in GGUF
    uint64_t offset = 0;      // relative to the data section
    uint64_t n_bytes = 0;
    const uint8_t* data = nullptr;  // into the mapping (reader) — nullptr for writer-side infos

    int64_t n_elements() const;
    int64_t n_rows() const { return ne.empty() || ne[0] == 0 ? 0 : n_elements() / ne[0]; }
};

// An ordered key → value map (order is preserved so a rewrite keeps the file's order).
class Metadata {
  public:
    bool has(const std::string& key) const { return index_.count(key) != 0; }
    const Value* find(const std::string& key) const;
    void set(const std::string& key, Value v);  // replaces in place or appends
    void erase(const std::string& key);
    const std::vector<std::pair<std::string, Value>>& items() const { return items_; }

    // Typed getters. `where` (usually the file path) prefixes the error message. Integer getters
    // accept any integer type whose value fits; get_f32 accepts any numeric type.
    std::optional<uint32_t> get_u32(const std::string& key) const;
    std::optional<int64_t> get_i64(const std::string& key) const;
    std::optional<float> get_f32(const std::string& key) const;
    std::optional<bool> get_bool(const std::string& key) const;
    std::optional<std::string> get_string(const std::string& key) const;
    const std::vector<std::string>* get_strings(const std::string& key) const;
    // Numeric array as floats / int32s; nullopt if absent, throws if present with a wrong type.
    std::optional<std::vector<float>> get_f32s(const std::string& key) const;
    std::optional<std::vector<int32_t>> get_i32s(const std::string& key) const;

    uint32_t require_u32(const std::string& key, const std::string& where) const;
    float require_f32(const std::string& key, const std::string& where) const;
    std::string require_string(const std::string& key, const std::string& where) const;

  private:
    std::vector<std::pair<std::string, Value>> items_;
    std::map<std::string, size_t> index_;
};

class File {
  public:
    // Opens, maps and validates. Throws duan::Error ("<path>: offset N: <what> (key|tensor X)").
    static std::unique_ptr<File> open(const std::string& path);
    // Parses an in-memory image (used by the fuzzer and tests); `name` stands in for the path.
    static std::unique_ptr<File> parse(const uint8_t* data, size_t size, const std::string& name);

    const std::string& path() const { return path_; }
    uint32_t version() const { return version_; }
    uint64_t alignment() const { return alignment_; }
    uint64_t data_offset() const { return data_offset_; }  // start of the tensor data section
    size_t file_size() const { return size_; }
    const Metadata& meta() const { return meta_; }
    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const TensorInfo* find_tensor(const std::string& name) const;
    const uint8_t* base() const { return base_; }

  private:
    MappedFile map_;
    std::string path_;
    const uint8_t* base_ = nullptr;
    size_t size_ = 0;
    uint32_t version_ = 0;
    uint64_t alignment_ = 32;
    uint64_t data_offset_ = 0;
    Metadata meta_;
    std::vector<TensorInfo> tensors_;
    std::map<std::string, size_t> tensor_index_;

    void parse_impl();
};

}  // namespace duan::gguf
