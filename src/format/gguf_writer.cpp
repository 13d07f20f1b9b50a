// GGUF v3 writer: header encoded into memory, tensor bytes streamed after it, all into
// "<path>.tmp" which finish() fsyncs and renames into place. Every I/O call is checked; errors name
// the file and the OS error.
#include "format/gguf_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <utility>

#include "core/error.h"

namespace duan::gguf {
namespace {

// Little-endian encoder into a byte string (the header is small: metadata plus tensor table).
class Enc {
  public:
    explicit Enc(std::string& out) : out_(out) {}
    template <typename T>
    void put(T v) {
        char b[sizeof(T)];
        std::memcpy(b, &v, sizeof(T));
        out_.append(b, sizeof(T));
    }
    void str(const std::string& s) {
        put<uint64_t>(s.size());
        out_.append(s);
    }

  private:
    std::string& out_;
};

bool signed_type(ValueType t) {
    return t == ValueType::INT8 || t == ValueType::INT16 || t == ValueType::INT32 ||
           t == ValueType::INT64;
}

// Range of an integer ValueType as [lo, hi] in 128-bit arithmetic.
void int_range(ValueType t, __int128& lo, __int128& hi) {
    switch (t) {
        case ValueType::UINT8:
            lo = 0, hi = UINT8_MAX;
            return;
        case ValueType::INT8:
            lo = INT8_MIN, hi = INT8_MAX;
            return;
        case ValueType::UINT16:
            lo = 0, hi = UINT16_MAX;
            return;
        case ValueType::INT16:
            lo = INT16_MIN, hi = INT16_MAX;
            return;
        case ValueType::UINT32:
            lo = 0, hi = UINT32_MAX;
            return;
        case ValueType::INT32:
            lo = INT32_MIN, hi = INT32_MAX;
            return;
        case ValueType::UINT64:
            lo = 0, hi = UINT64_MAX;
            return;
        case ValueType::INT64:
            lo = INT64_MIN, hi = INT64_MAX;
            return;
        case ValueType::BOOL:
            lo = 0, hi = 1;
            return;
        default:
            lo = hi = 0;
            return;
    }
}

void put_int(Enc& e, ValueType t, __int128 x, const std::string& key) {
    __int128 lo, hi;
    int_range(t, lo, hi);
    if (t == ValueType::BOOL) x = x != 0;
    if (x < lo || x > hi)
        fail("gguf writer: metadata key ", key, ": value out of range for ", value_type_name(t));
    switch (t) {
        case ValueType::UINT8:
        case ValueType::BOOL:
            e.put(static_cast<uint8_t>(x));
            break;
        case ValueType::INT8:
            e.put(static_cast<int8_t>(x));
            break;
        case ValueType::UINT16:
            e.put(static_cast<uint16_t>(x));
            break;
        case ValueType::INT16:
            e.put(static_cast<int16_t>(x));
            break;
        case ValueType::UINT32:
            e.put(static_cast<uint32_t>(x));
            break;
        case ValueType::INT32:
            e.put(static_cast<int32_t>(x));
            break;
        case ValueType::UINT64:
            e.put(static_cast<uint64_t>(x));
            break;
        case ValueType::INT64:
            e.put(static_cast<int64_t>(x));
            break;
        default:
            break;
    }
}

void put_array(Enc& e, const Value& v, const std::string& key, int depth);

void put_value(Enc& e, const Value& v, const std::string& key, int depth) {
    switch (v.type) {
        case ValueType::FLOAT32:
            e.put(static_cast<float>(v.f64));
            return;
        case ValueType::FLOAT64:
            e.put(v.f64);
            return;
        case ValueType::STRING:
            e.str(v.str);
            return;
        case ValueType::ARRAY:
            put_array(e, v, key, depth);
            return;
        default:
            break;
    }
    if (static_cast<uint32_t>(v.type) > static_cast<uint32_t>(ValueType::FLOAT64))
        fail("gguf writer: metadata key ", key, ": unknown value type ",
             static_cast<uint32_t>(v.type));
    put_int(e, v.type, signed_type(v.type) ? __int128(v.i64) : __int128(v.u64), key);
}

void put_array(Enc& e, const Value& v, const std::string& key, int depth) {
    const ValueType et = v.elem_type;
    if (static_cast<uint32_t>(et) > static_cast<uint32_t>(ValueType::FLOAT64))
        fail("gguf writer: metadata key ", key, ": unknown array element type ",
             static_cast<uint32_t>(et));
    if (et == ValueType::ARRAY && depth + 1 >= kMaxArrayDepth)
        fail("gguf writer: metadata key ", key, ": arrays nested deeper than ", kMaxArrayDepth);
    const size_t n = v.array_size();
    e.put(static_cast<uint32_t>(et));
    e.put(static_cast<uint64_t>(n));
    switch (et) {
        case ValueType::STRING:
            for (const auto& s : v.strs) e.str(s);
            return;
        case ValueType::ARRAY:
            for (const auto& a : v.arr) {
                if (a.type != ValueType::ARRAY)
                    fail("gguf writer: metadata key ", key, ": element of an array of arrays is ",
                         value_type_name(a.type));
                put_array(e, a, key, depth + 1);
            }
            return;
        case ValueType::FLOAT32:
            for (double d : v.nums) e.put(static_cast<float>(d));
            return;
        case ValueType::FLOAT64:
            for (double d : v.nums) e.put(d);
            return;
        default:
            break;
    }
    // Integer or bool elements: `ints` is exact (UINT64 keeps the bit pattern); `nums` is the
    // fallback for values built only as doubles.
    if (!v.ints.empty()) {
        if (!v.nums.empty() && v.nums.size() != v.ints.size())
            fail("gguf writer: metadata key ", key, ": ints and nums have different lengths");
        for (int64_t x : v.ints)
            put_int(e, et, et == ValueType::UINT64 ? __int128(uint64_t(x)) : __int128(x), key);
        return;
    }
    for (double d : v.nums) {
        if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 1.9e19)
            fail("gguf writer: metadata key ", key, ": ", d, " is not a valid ",
                 value_type_name(et));
        put_int(e, et, static_cast<__int128>(d), key);
    }
}

uint64_t align_up(uint64_t x, uint64_t a) {
    return (x + a - 1) / a * a;
}

const char kZeros[256] = {};

}  // namespace

Writer::Writer(std::string path, uint64_t alignment)
    : path_(std::move(path)), tmp_path_(path_ + ".tmp"), alignment_(alignment) {
    if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0 ||
        alignment_ > std::numeric_limits<uint32_t>::max())
        fail(path_, ": gguf writer: alignment ", alignment_, " is not a power of two");
}

Writer::~Writer() {
    if (f_) std::fclose(f_);
    if (began_ && !finished_) ::unlink(tmp_path_.c_str());
}

void Writer::add_tensor(const std::string& name, DType type, const std::vector<int64_t>& ne) {
    if (began_) fail(path_, ": gguf writer: add_tensor(", name, ") after begin_data()");
    if (name.empty()) fail(path_, ": gguf writer: empty tensor name");
    for (const auto& t : tensors_)
        if (t.name == name) fail(path_, ": gguf writer: duplicate tensor ", name);
    std::string why;
    auto bytes = tensor_n_bytes(type, ne, &why);
    if (!bytes) fail(path_, ": gguf writer: tensor ", name, " ", why);
    TensorInfo ti;
    ti.name = name;
    ti.type = type;
    ti.ne = ne;
    ti.n_bytes = *bytes;
    ti.offset = data_pos_;
    uint64_t padded = align_up(ti.n_bytes, alignment_);
    if (padded < ti.n_bytes || __builtin_add_overflow(data_pos_, padded, &data_pos_))
        fail(path_, ": gguf writer: tensor ", name, ": data section overflows");
    tensors_.push_back(std::move(ti));
}

void Writer::write_bytes(const void* p, size_t n) {
    if (n == 0) return;
    if (std::fwrite(p, 1, n, f_) != n) {
        int e = errno;
        fail(tmp_path_, ": cannot write ", n, " bytes: ", std::strerror(e), " (errno ", e, ")");
    }
}

void Writer::begin_data() {
    if (began_) fail(path_, ": gguf writer: begin_data() called twice");
    // The constructor's alignment is authoritative: metadata copied from another file may carry
    // a different general.alignment, which would make the reader look for data elsewhere.
    if (alignment_ != kDefaultAlignment || meta_.has("general.alignment"))
        meta_.set("general.alignment", Value::from_u32(static_cast<uint32_t>(alignment_)));

    std::string hdr;
    Enc e(hdr);
    hdr.append("GGUF", 4);
    e.put<uint32_t>(3);
    e.put<uint64_t>(tensors_.size());
    e.put<uint64_t>(meta_.items().size());
    for (const auto& [key, v] : meta_.items()) {
        e.str(key);
        e.put(static_cast<uint32_t>(v.type));
        put_value(e, v, key, 0);
    }
    for (const auto& t : tensors_) {
        e.str(t.name);
        e.put(static_cast<uint32_t>(t.ne.size()));
        for (int64_t d : t.ne) e.put(static_cast<uint64_t>(d));
        e.put(static_cast<uint32_t>(t.type));
        e.put(t.offset);
    }
    hdr.resize(align_up(hdr.size(), alignment_), '\0');

    f_ = std::fopen(tmp_path_.c_str(), "wb");
    if (!f_) {
        int err = errno;
        fail(tmp_path_, ": cannot create: ", std::strerror(err), " (errno ", err, ")");
    }
    began_ = true;
    write_bytes(hdr.data(), hdr.size());
}

void Writer::write_tensor_data(const std::string& name, const void* data, size_t n_bytes) {
    if (!began_) begin_data();
    if (finished_ || !f_)
        fail(path_, ": gguf writer: write_tensor_data(", name, ") after finish()");
    if (next_tensor_ >= tensors_.size())
        fail(path_, ": gguf writer: tensor ", name, " was not declared (all ", tensors_.size(),
             " tensors are written)");
    const TensorInfo& t = tensors_[next_tensor_];
    if (t.name != name)
        fail(path_, ": gguf writer: expected data for tensor ", t.name, ", got ", name);
    if (t.n_bytes != n_bytes)
        fail(path_, ": gguf writer: tensor ", name, " has ", t.n_bytes, " bytes, got ", n_bytes);
    write_bytes(data, n_bytes);
    for (uint64_t pad = align_up(n_bytes, alignment_) - n_bytes; pad > 0;) {
        size_t k = pad < sizeof(kZeros) ? static_cast<size_t>(pad) : sizeof(kZeros);
        write_bytes(kZeros, k);
        pad -= k;
    }
    ++next_tensor_;
}

void Writer::finish() {
    if (finished_) return;
    if (!began_) begin_data();
    if (next_tensor_ != tensors_.size())
        fail(path_, ": gguf writer: finish() after ", next_tensor_, " of ", tensors_.size(),
             " tensors (next: ", tensors_[next_tensor_].name, ")");
    auto io_fail = [&](const char* what) {
        int e = errno;
        fail(tmp_path_, ": ", what, ": ", std::strerror(e), " (errno ", e, ")");
    };
    if (std::fflush(f_) != 0) io_fail("cannot flush");
    if (::fsync(fileno(f_)) != 0) io_fail("cannot fsync");
    std::FILE* f = f_;
    f_ = nullptr;
    if (std::fclose(f) != 0) io_fail("cannot close");
    if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
        int e = errno;
        fail(tmp_path_, ": cannot rename to ", path_, ": ", std::strerror(e), " (errno ", e, ")");
    }
    finished_ = true;
    // Make the rename durable too (best effort: some filesystems refuse fsync on directories).
    const std::string dir = std::filesystem::path(path_).parent_path().string();
    int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
}

}  // namespace duan::gguf
