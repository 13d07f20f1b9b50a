// GGUF reader: a bounds-checked cursor over the mapped bytes. Nothing read from the file is
// trusted: every count is bounded by the bytes left before anything is allocated for it, every
// length and offset is checked before it is dereferenced, and every error names the file, the byte
// offset and the key or tensor being read.
#include "format/gguf.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <string_view>
#include <type_traits>
#include <utility>

#include "core/error.h"
#include "core/shape.h"

namespace duan::gguf {

static_assert(std::endian::native == std::endian::little,
              "GGUF is read in place: little-endian only");

const char* value_type_name(ValueType t) {
    switch (t) {
        case ValueType::UINT8:
            return "u8";
        case ValueType::INT8:
            return "i8";
        case ValueType::UINT16:
            return "u16";
        case ValueType::INT16:
            return "i16";
        case ValueType::UINT32:
            return "u32";
        case ValueType::INT32:
            return "i32";
        case ValueType::FLOAT32:
            return "f32";
        case ValueType::BOOL:
            return "bool";
        case ValueType::STRING:
            return "string";
        case ValueType::ARRAY:
            return "array";
        case ValueType::UINT64:
            return "u64";
        case ValueType::INT64:
            return "i64";
        case ValueType::FLOAT64:
            return "f64";
    }
    return "unknown";
}

namespace {

bool known_value_type(uint32_t t) {
    return t <= static_cast<uint32_t>(ValueType::FLOAT64);
}

bool is_signed_int(ValueType t) {
    return t == ValueType::INT8 || t == ValueType::INT16 || t == ValueType::INT32 ||
           t == ValueType::INT64;
}
bool is_unsigned_int(ValueType t) {
    return t == ValueType::UINT8 || t == ValueType::UINT16 || t == ValueType::UINT32 ||
           t == ValueType::UINT64;
}
bool is_float_type(ValueType t) {
    return t == ValueType::FLOAT32 || t == ValueType::FLOAT64;
}

// Smallest encoding of one value of type t: bounds element counts before any allocation.
uint64_t min_encoded_size(ValueType t) {
    switch (t) {
        case ValueType::UINT8:
        case ValueType::INT8:
        case ValueType::BOOL:
            return 1;
        case ValueType::UINT16:
        case ValueType::INT16:
            return 2;
        case ValueType::UINT32:
        case ValueType::INT32:
        case ValueType::FLOAT32:
            return 4;
        case ValueType::UINT64:
        case ValueType::INT64:
        case ValueType::FLOAT64:
        case ValueType::STRING:
            return 8;  // u64 length
        case ValueType::ARRAY:
            return 4 + 8;  // element type + count
    }
    return 1;
}

// Bounds-checked little-endian cursor. ctx_ (" (key X)" / " (tensor X)") is appended to errors.
class Cursor {
  public:
    Cursor(const uint8_t* p, size_t n, const std::string& name) : p_(p), n_(n), name_(name) {}

    size_t pos() const { return pos_; }
    size_t left() const { return n_ - pos_; }
    void set_ctx(std::string c) { ctx_ = std::move(c); }

    template <typename... A>
    [[noreturn]] void fail_at(uint64_t off, const A&... parts) const {
        fail(name_, ": offset ", off, ": ", parts..., ctx_);
    }

    void need(uint64_t k, const char* what) const {
        if (k > left())
            fail_at(pos_, "truncated file: ", what, " needs ", k, " bytes but only ", left(),
                    " remain");
    }
    template <typename T>
    T read(const char* what) {
        need(sizeof(T), what);
        T v;
        std::memcpy(&v, p_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }
    uint32_t u32(const char* what) { return read<uint32_t>(what); }
    uint64_t u64(const char* what) { return read<uint64_t>(what); }

    std::string_view str(const char* what) {
        size_t off = pos_;
        uint64_t len = u64(what);
        if (len > left())
            fail_at(off, what, " length ", len, " runs past the end of the file (", left(),
                    " bytes left)");
        std::string_view s(reinterpret_cast<const char*>(p_ + pos_), static_cast<size_t>(len));
        pos_ += static_cast<size_t>(len);
        return s;
    }
    const uint8_t* take(size_t k, const char* what) {
        need(k, what);
        const uint8_t* q = p_ + pos_;
        pos_ += k;
        return q;
    }

  private:
    const uint8_t* p_;
    size_t n_;
    size_t pos_ = 0;
    const std::string& name_;
    std::string ctx_;
};

template <typename T>
void fill_numbers(const uint8_t* src, size_t n, Value& v, bool keep_ints) {
    v.nums.resize(n);
    if (keep_ints) v.ints.resize(n);
    for (size_t i = 0; i < n; ++i) {
        T x;
        std::memcpy(&x, src + i * sizeof(T), sizeof(T));
        v.nums[i] = static_cast<double>(x);
        if (keep_ints) v.ints[i] = static_cast<int64_t>(x);  // u64 above INT64_MAX: bit pattern
    }
}

void read_array(Cursor& c, Value& v, int depth) {
    size_t off = c.pos();
    uint32_t et = c.u32("array element type");
    if (!known_value_type(et)) c.fail_at(off, "unknown array element type ", et);
    v.elem_type = static_cast<ValueType>(et);
    if (v.elem_type == ValueType::ARRAY && depth + 1 >= kMaxArrayDepth)
        c.fail_at(off, "arrays nested deeper than ", kMaxArrayDepth, " levels");
    uint64_t n = c.u64("array length");
    uint64_t min = min_encoded_size(v.elem_type);
    if (n > c.left() / min)
        c.fail_at(off, "array of ", n, " ", value_type_name(v.elem_type),
                  " elements does not fit in the ", c.left(), " bytes left");
    if (n > kMaxArrayElements)
        c.fail_at(off, "array of ", n, " elements exceeds the limit of ", kMaxArrayElements);
    size_t count = static_cast<size_t>(n);  // now bounded by the file size and the limit
    switch (v.elem_type) {
        case ValueType::STRING:
            v.strs.reserve(count);
            for (size_t i = 0; i < count; ++i) v.strs.emplace_back(c.str("array string"));
            return;
        case ValueType::ARRAY:
            v.arr.resize(count);
            for (size_t i = 0; i < count; ++i) {
                v.arr[i].type = ValueType::ARRAY;
                read_array(c, v.arr[i], depth + 1);
            }
            return;
        default:
            break;
    }
    const uint8_t* src = c.take(count * min, "array data");
    switch (v.elem_type) {
        case ValueType::UINT8:
            fill_numbers<uint8_t>(src, count, v, true);
            break;
        case ValueType::INT8:
            fill_numbers<int8_t>(src, count, v, true);
            break;
        case ValueType::UINT16:
            fill_numbers<uint16_t>(src, count, v, true);
            break;
        case ValueType::INT16:
            fill_numbers<int16_t>(src, count, v, true);
            break;
        case ValueType::UINT32:
            fill_numbers<uint32_t>(src, count, v, true);
            break;
        case ValueType::INT32:
            fill_numbers<int32_t>(src, count, v, true);
            break;
        case ValueType::UINT64:
            fill_numbers<uint64_t>(src, count, v, true);
            break;
        case ValueType::INT64:
            fill_numbers<int64_t>(src, count, v, true);
            break;
        case ValueType::FLOAT32:
            fill_numbers<float>(src, count, v, false);
            break;
        case ValueType::FLOAT64:
            fill_numbers<double>(src, count, v, false);
            break;
        case ValueType::BOOL:
            fill_numbers<uint8_t>(src, count, v, true);
            for (size_t i = 0; i < count; ++i) {
                v.ints[i] = v.ints[i] != 0;
                v.nums[i] = static_cast<double>(v.ints[i]);
            }
            break;
        default:
            break;
    }
}

void read_value(Cursor& c, ValueType t, Value& v, int depth) {
    v.type = t;
    switch (t) {
        case ValueType::UINT8:
            v.u64 = c.read<uint8_t>("u8 value");
            break;
        case ValueType::INT8:
            v.i64 = c.read<int8_t>("i8 value");
            break;
        case ValueType::UINT16:
            v.u64 = c.read<uint16_t>("u16 value");
            break;
        case ValueType::INT16:
            v.i64 = c.read<int16_t>("i16 value");
            break;
        case ValueType::UINT32:
            v.u64 = c.read<uint32_t>("u32 value");
            break;
        case ValueType::INT32:
            v.i64 = c.read<int32_t>("i32 value");
            break;
        case ValueType::UINT64:
            v.u64 = c.read<uint64_t>("u64 value");
            break;
        case ValueType::INT64:
            v.i64 = c.read<int64_t>("i64 value");
            break;
        case ValueType::FLOAT32:
            v.f64 = c.read<float>("f32 value");
            break;
        case ValueType::FLOAT64:
            v.f64 = c.read<double>("f64 value");
            break;
        case ValueType::BOOL:
            v.u64 = c.read<uint8_t>("bool value") != 0;
            break;
        case ValueType::STRING:
            v.str = std::string(c.str("string value"));
            break;
        case ValueType::ARRAY:
            read_array(c, v, depth);
            break;
    }
}

uint64_t align_up(uint64_t x, uint64_t a) {
    return (x + a - 1) / a * a;
}

}  // namespace

// ---- shapes ------------------------------------------------------------------------------------

std::optional<uint64_t> tensor_n_bytes(DType type, const std::vector<int64_t>& ne,
                                       std::string* why) {
    auto bad = [&](std::string s) -> std::optional<uint64_t> {
        if (why) *why = std::move(s);
        return std::nullopt;
    };
    if (ne.empty() || ne.size() > static_cast<size_t>(kMaxDims))
        return bad("has " + std::to_string(ne.size()) + " dimensions (expected 1.." +
                   std::to_string(kMaxDims) + ")");
    int64_t n = 1;
    for (size_t i = 0; i < ne.size(); ++i) {
        if (ne[i] < 0)
            return bad("dimension " + std::to_string(i) + " is negative (" + std::to_string(ne[i]) +
                       ")");
        if (__builtin_mul_overflow(n, ne[i], &n))
            return bad("element count overflows int64 (dimension " + std::to_string(i) + " = " +
                       std::to_string(ne[i]) + ")");
    }
    const DTypeInfo& ti = dtype_info(type);
    if (ne[0] % ti.block_size != 0)
        return bad("row length " + std::to_string(ne[0]) + " is not a multiple of the " + ti.name +
                   " block size " + std::to_string(ti.block_size));
    if (n == 0) return uint64_t(0);
    uint64_t rows = static_cast<uint64_t>(n / ne[0]);
    uint64_t row_bytes = static_cast<uint64_t>(ne[0] / ti.block_size) * ti.block_bytes;
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(rows, row_bytes, &bytes) ||
        bytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        return bad("byte size overflows (" + std::to_string(rows) + " rows of " +
                   std::to_string(row_bytes) + " bytes)");
    return bytes;
}

int64_t TensorInfo::n_elements() const {
    return shape_numel(ne);  // validated not to overflow when read or declared
}

// ---- Value -------------------------------------------------------------------------------------

bool Value::is_integer() const {
    return is_signed_int(type) || is_unsigned_int(type);
}
bool Value::is_float() const {
    return is_float_type(type);
}

size_t Value::array_size() const {
    if (type != ValueType::ARRAY) return 0;
    switch (elem_type) {
        case ValueType::STRING:
            return strs.size();
        case ValueType::ARRAY:
            return arr.size();
        case ValueType::FLOAT32:
        case ValueType::FLOAT64:
            return nums.size();
        default:
            return ints.empty() ? nums.size() : ints.size();
    }
}

Value Value::from_u32(uint32_t v) {
    Value r;
    r.type = ValueType::UINT32;
    r.u64 = v;
    return r;
}
Value Value::from_i32(int32_t v) {
    Value r;
    r.type = ValueType::INT32;
    r.i64 = v;
    return r;
}
Value Value::from_u64(uint64_t v) {
    Value r;
    r.type = ValueType::UINT64;
    r.u64 = v;
    return r;
}
Value Value::from_f32(float v) {
    Value r;
    r.type = ValueType::FLOAT32;
    r.f64 = v;
    return r;
}
Value Value::from_bool(bool v) {
    Value r;
    r.type = ValueType::BOOL;
    r.u64 = v ? 1 : 0;
    return r;
}
Value Value::from_string(std::string v) {
    Value r;
    r.type = ValueType::STRING;
    r.str = std::move(v);
    return r;
}
Value Value::from_strings(std::vector<std::string> v) {
    Value r;
    r.type = ValueType::ARRAY;
    r.elem_type = ValueType::STRING;
    r.strs = std::move(v);
    return r;
}
Value Value::from_f32s(const std::vector<float>& v) {
    Value r;
    r.type = ValueType::ARRAY;
    r.elem_type = ValueType::FLOAT32;
    r.nums.assign(v.begin(), v.end());
    return r;
}
Value Value::from_i32s(const std::vector<int32_t>& v) {
    Value r;
    r.type = ValueType::ARRAY;
    r.elem_type = ValueType::INT32;
    r.nums.assign(v.begin(), v.end());
    r.ints.assign(v.begin(), v.end());
    return r;
}

// ---- Metadata ----------------------------------------------------------------------------------

const Value* Metadata::find(const std::string& key) const {
    auto it = index_.find(key);
    return it == index_.end() ? nullptr : &items_[it->second].second;
}

void Metadata::set(const std::string& key, Value v) {
    auto it = index_.find(key);
    if (it != index_.end()) {
        items_[it->second].second = std::move(v);
        return;
    }
    index_.emplace(key, items_.size());
    items_.emplace_back(key, std::move(v));
}

void Metadata::erase(const std::string& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return;
    items_.erase(items_.begin() + static_cast<std::ptrdiff_t>(it->second));
    index_.clear();
    for (size_t i = 0; i < items_.size(); ++i) index_.emplace(items_[i].first, i);
}

namespace {
[[noreturn]] void wrong_type(const std::string& key, const Value& v, const char* want) {
    if (v.type == ValueType::ARRAY)
        fail("metadata key ", key, ": expected ", want, ", found array of ",
             value_type_name(v.elem_type));
    fail("metadata key ", key, ": expected ", want, ", found ", value_type_name(v.type));
}

// The integer value of v as a signed 128-bit quantity, so any u64/i64 compares exactly.
__int128 int_value(const Value& v) {
    return is_signed_int(v.type) ? static_cast<__int128>(v.i64) : static_cast<__int128>(v.u64);
}
}  // namespace

std::optional<uint32_t> Metadata::get_u32(const std::string& key) const {
    const Value* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_integer()) wrong_type(key, *v, "an integer");
    __int128 x = int_value(*v);
    if (x < 0 || x > std::numeric_limits<uint32_t>::max())
        fail("metadata key ", key, ": value ",
             is_signed_int(v->type) ? std::to_string(v->i64) : std::to_string(v->u64),
             " does not fit in u32");
    return static_cast<uint32_t>(x);
}

std::optional<int64_t> Metadata::get_i64(const std::string& key) const {
    const Value* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_integer()) wrong_type(key, *v, "an integer");
    __int128 x = int_value(*v);
    if (x > std::numeric_limits<int64_t>::max())
        fail("metadata key ", key, ": value ", v->u64, " does not fit in i64");
    return static_cast<int64_t>(x);
}

std::optional<float> Metadata::get_f32(const std::string& key) const {
    const Value* v = find(key);
    if (!v) return std::nullopt;
    if (v->is_float()) return static_cast<float>(v->f64);
    if (v->is_integer()) return static_cast<float>(int_value(*v));
    wrong_type(key, *v, "a number");
}

std::optional<bool> Metadata::get_bool(const std::string& key) const {
    const Value* v = find(key);
    if (!v) return std::nullopt;
    if (v->type == ValueType::BOOL) return v->u64 != 0;
    if (v->is_integer()) {
        __int128 x = int_value(*v);
        if (x == 0 || x == 1) return x == 1;
    }
    wrong_type(key, *v, "a bool");
}

std::optional<std::string> Metadata::get_string(const std::string& key) const {
    const Value* v = find(key);
    if (!v) return std::nullopt;
    if (v->type != ValueType::STRING) wrong_type(key, *v, "a string");
    return v->str;
}

const std::vector<std::string>* Metadata::get_strings(const std::string& key) const {
    const Value* v = find(key);
    if (!v) return nullptr;
    if (v->type != ValueType::ARRAY || v->elem_type != ValueType::STRING)
        wrong_type(key, *v, "an array of strings");
    return &v->strs;
}

std::optional<std::vector<float>> Metadata::get_f32s(const std::string& key) const {
    const Value* v = find(key);
    if (!v) return std::nullopt;
    if (v->type != ValueType::ARRAY || v->elem_type == ValueType::STRING ||
        v->elem_type == ValueType::ARRAY)
        wrong_type(key, *v, "a numeric array");
    if (v->nums.empty() && !v->ints.empty()) {  // an integer array built with `ints` only
        std::vector<float> out(v->ints.size());
        for (size_t i = 0; i < out.size(); ++i)
            out[i] = v->elem_type == ValueType::UINT64
                         ? static_cast<float>(static_cast<uint64_t>(v->ints[i]))
                         : static_cast<float>(v->ints[i]);
        return out;
    }
    std::vector<float> out(v->nums.size());
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(v->nums[i]);
    return out;
}

std::optional<std::vector<int32_t>> Metadata::get_i32s(const std::string& key) const {
    const Value* v = find(key);
    if (!v) return std::nullopt;
    if (v->type != ValueType::ARRAY ||
        !(is_signed_int(v->elem_type) || is_unsigned_int(v->elem_type) ||
          v->elem_type == ValueType::BOOL))
        wrong_type(key, *v, "an integer array");
    bool from_ints = !v->ints.empty() || v->nums.empty();
    size_t n = from_ints ? v->ints.size() : v->nums.size();
    std::vector<int32_t> out(n);
    for (size_t i = 0; i < n; ++i) {
        __int128 x;
        if (!from_ints) {
            double d = v->nums[i];
            if (!(std::fabs(d) < 4e9))
                fail("metadata key ", key, ": element ", i, " is not an i32");
            x = static_cast<__int128>(d);
        } else if (v->elem_type == ValueType::UINT64)
            x = static_cast<__int128>(static_cast<uint64_t>(v->ints[i]));
        else
            x = v->ints[i];
        if (x < std::numeric_limits<int32_t>::min() || x > std::numeric_limits<int32_t>::max())
            fail("metadata key ", key, ": element ", i, " does not fit in i32");
        out[i] = static_cast<int32_t>(x);
    }
    return out;
}

uint32_t Metadata::require_u32(const std::string& key, const std::string& where) const {
    try {
        if (auto v = get_u32(key)) return *v;
    } catch (const Error& e) {
        fail(where, ": ", e.what());
    }
    fail(where, ": missing metadata key ", key, " (u32)");
}

float Metadata::require_f32(const std::string& key, const std::string& where) const {
    try {
        if (auto v = get_f32(key)) return *v;
    } catch (const Error& e) {
        fail(where, ": ", e.what());
    }
    fail(where, ": missing metadata key ", key, " (f32)");
}

std::string Metadata::require_string(const std::string& key, const std::string& where) const {
    try {
        if (auto v = get_string(key)) return *v;
    } catch (const Error& e) {
        fail(where, ": ", e.what());
    }
    fail(where, ": missing metadata key ", key, " (string)");
}

// ---- File --------------------------------------------------------------------------------------

std::unique_ptr<File> File::open(const std::string& path) {
    auto f = std::make_unique<File>();
    f->map_ = MappedFile(path);
    f->path_ = path;
    f->base_ = f->map_.data();
    f->size_ = f->map_.size();
    f->parse_impl();
    return f;
}

std::unique_ptr<File> File::parse(const uint8_t* data, size_t size, const std::string& name) {
    auto f = std::make_unique<File>();
    f->path_ = name;
    f->base_ = data;
    f->size_ = size;
    f->parse_impl();
    return f;
}

const TensorInfo* File::find_tensor(const std::string& name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

void File::parse_impl() {
    Cursor c(base_, size_, path_);

    // Header: magic, version, counts.
    const uint8_t* magic = c.take(4, "magic");
    if (std::memcmp(magic, "GGUF", 4) != 0) c.fail_at(0, "bad magic (not a GGUF file)");
    version_ = c.u32("version");
    if (version_ == 1) c.fail_at(4, "GGUF v1 is not supported (re-convert the model)");
    if ((version_ & 0xffff) == 0 && __builtin_bswap32(version_) >= 1 &&
        __builtin_bswap32(version_) <= 3)
        c.fail_at(4, "big-endian GGUF files are not supported");
    if (version_ != 2 && version_ != 3)
        c.fail_at(4, "unsupported GGUF version ", version_, " (expected 2 or 3)");
    uint64_t n_tensors = c.u64("tensor count");
    uint64_t n_kv = c.u64("metadata count");
    // Each key/value takes >= 8 (key length) + 4 (type) bytes; each tensor info >= 8 (name
    // length) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset) bytes.
    constexpr uint64_t kMinKv = 8 + 4, kMinTensor = 8 + 4 + 8 + 4 + 8;
    if (n_tensors > c.left() / kMinTensor)
        c.fail_at(8, "tensor count ", n_tensors, " cannot fit in the ", c.left(),
                  " bytes after the header");
    if (n_kv > c.left() / kMinKv || n_kv * kMinKv + n_tensors * kMinTensor > c.left())
        c.fail_at(16, "metadata count ", n_kv, " (with ", n_tensors, " tensors) cannot fit in the ",
                  c.left(), " bytes after the header");

    // Metadata.
    uint64_t alignment_off = 0;
    for (uint64_t i = 0; i < n_kv; ++i) {
        size_t off = c.pos();
        c.set_ctx(" (key #" + std::to_string(i) + ")");
        std::string key(c.str("key"));
        c.set_ctx(" (key " + key + ")");
        size_t type_off = c.pos();
        uint32_t t = c.u32("value type");
        if (!known_value_type(t)) c.fail_at(type_off, "unknown value type ", t);
        if (meta_.has(key)) c.fail_at(off, "duplicate key");
        if (key == "general.alignment") alignment_off = off;
        Value v;
        read_value(c, static_cast<ValueType>(t), v, 0);
        meta_.set(key, std::move(v));
    }
    if (const Value* a = meta_.find("general.alignment")) {
        c.set_ctx(" (key general.alignment)");
        if (a->type != ValueType::UINT32)
            c.fail_at(alignment_off, "alignment must be a u32, found ", value_type_name(a->type));
        if (a->u64 == 0 || (a->u64 & (a->u64 - 1)) != 0)
            c.fail_at(alignment_off, "alignment ", a->u64, " is not a power of two");
        alignment_ = a->u64;
    }

    // Tensor table.
    std::vector<uint64_t> info_off;
    tensors_.reserve(static_cast<size_t>(n_tensors));  // bounded by the file size above
    info_off.reserve(static_cast<size_t>(n_tensors));
    for (uint64_t i = 0; i < n_tensors; ++i) {
        size_t off = c.pos();
        c.set_ctx(" (tensor #" + std::to_string(i) + ")");
        TensorInfo ti;
        ti.name = std::string(c.str("tensor name"));
        c.set_ctx(" (tensor " + ti.name + ")");
        size_t dims_off = c.pos();
        uint32_t n_dims = c.u32("n_dims");
        if (n_dims < 1 || n_dims > static_cast<uint32_t>(kMaxDims))
            c.fail_at(dims_off, "tensor has ", n_dims, " dimensions (expected 1..", kMaxDims, ")");
        ti.ne.resize(n_dims);
        for (auto& d : ti.ne) d = static_cast<int64_t>(c.u64("dimension"));
        size_t type_off = c.pos();
        uint32_t type_id = c.u32("tensor type");
        auto info = dtype_info(type_id);
        if (!info) c.fail_at(type_off, "unknown tensor type id ", type_id);
        ti.type = info->type;
        size_t offset_off = c.pos();
        ti.offset = c.u64("tensor data offset");
        std::string why;
        auto bytes = tensor_n_bytes(ti.type, ti.ne, &why);
        if (!bytes) c.fail_at(dims_off, "tensor ", why);
        ti.n_bytes = *bytes;
        if (ti.offset % alignment_ != 0)
            c.fail_at(offset_off, "tensor data offset ", ti.offset, " is not aligned to ",
                      alignment_);
        if (!tensor_index_.emplace(ti.name, tensors_.size()).second)
            c.fail_at(off, "duplicate tensor name");
        tensors_.push_back(std::move(ti));
        info_off.push_back(offset_off);
    }
    c.set_ctx("");

    // Data section: starts at the next multiple of the alignment. A file without tensors may end
    // before that padding (the reference writes vocab-only files that way).
    data_offset_ = align_up(c.pos(), alignment_);
    if (!tensors_.empty() && data_offset_ > size_)
        c.fail_at(c.pos(), "data section would start at ", data_offset_,
                  ", past the end of the file (", size_, " bytes)");
    for (size_t i = 0; i < tensors_.size(); ++i) {
        TensorInfo& ti = tensors_[i];
        uint64_t room = size_ - data_offset_;  // bytes available to the data section
        if (ti.offset > room || ti.n_bytes > room - ti.offset)
            fail(path_, ": offset ", info_off[i], ": tensor data [", data_offset_ + ti.offset,
                 ", +", ti.n_bytes, ") runs past the end of the file (", size_, " bytes) (tensor ",
                 ti.name, ")");
        ti.data = base_ + data_offset_ + ti.offset;
    }
}

}  // namespace duan::gguf
