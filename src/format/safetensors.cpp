#include "format/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fp16.h"
#include "core/shape.h"

namespace duan::safetensors {

namespace {

struct DTypeRow {
    DType t;
    const char* name;
    size_t size;
};
constexpr DTypeRow kDTypes[] = {
    {DType::BOOL, "BOOL", 1}, {DType::U8, "U8", 1},           {DType::I8, "I8", 1},
    {DType::I16, "I16", 2},   {DType::U16, "U16", 2},         {DType::I32, "I32", 4},
    {DType::U32, "U32", 4},   {DType::I64, "I64", 8},         {DType::U64, "U64", 8},
    {DType::F16, "F16", 2},   {DType::BF16, "BF16", 2},       {DType::F32, "F32", 4},
    {DType::F64, "F64", 8},   {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E5M2, "F8_E5M2", 1},
};

// A header larger than this is not a real checkpoint (the biggest known are a few MB); refusing it
// keeps a corrupt length from turning into a giant allocation.
constexpr uint64_t kMaxHeader = 100ull << 20;

}  // namespace

size_t dtype_size(DType t) {
    for (const auto& r : kDTypes)
        if (r.t == t) return r.size;
    return 0;
}
const char* dtype_name(DType t) {
    for (const auto& r : kDTypes)
        if (r.t == t) return r.name;
    return "?";
}
std::optional<DType> dtype_from_name(std::string_view s) {
    for (const auto& r : kDTypes)
        if (s == r.name) return r.t;
    return std::nullopt;
}

int64_t TensorInfo::numel() const {
    return shape_numel(shape);
}

File::File(const std::string& path) : map_(path), where_(path) {
    parse(map_.data(), map_.size());
}

File::File(const uint8_t* bytes, size_t size, std::string where) : where_(std::move(where)) {
    parse(bytes, size);
}

void File::parse(const uint8_t* bytes, size_t size) {
    if (size < 8) fail(where_, ": not a safetensors file: ", size, " bytes, need at least 8");
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | bytes[i];
    if (hlen > size - 8)
        fail(where_, ": header length ", hlen, " (at byte 0) runs past the end of the file (", size,
             " bytes)");
    if (hlen > kMaxHeader) fail(where_, ": header length ", hlen, " is implausibly large");
    if (hlen < 2) fail(where_, ": header of ", hlen, " bytes cannot hold a JSON object");
    const char* hp = reinterpret_cast<const char*>(bytes + 8);
    // ordered_json keeps the header order (tensors() lists them as the writer did).
    nlohmann::ordered_json j =
        nlohmann::ordered_json::parse(hp, hp + hlen, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) fail(where_, ": header (bytes 8..", 8 + hlen, ") is not valid JSON");
    if (!j.is_object()) fail(where_, ": header JSON is not an object");

    const uint8_t* data = bytes + 8 + hlen;
    const uint64_t data_size = size - 8 - hlen;
    for (auto it = j.begin(); it != j.end(); ++it) {
        const std::string& name = it.key();
        const auto& v = it.value();
        if (name == "__metadata__") {
            if (!v.is_object()) fail(where_, ": __metadata__ is not an object");
            for (auto m = v.begin(); m != v.end(); ++m) {
                if (!m.value().is_string())
                    fail(where_, ": __metadata__ key '", m.key(), "' is not a string");
                metadata_[m.key()] = m.value().get<std::string>();
            }
            continue;
        }
        auto bad = [&](const char* what) { fail(where_, ": tensor '", name, "': ", what); };
        if (!v.is_object()) bad("entry is not an object");
        if (!v.contains("dtype") || !v["dtype"].is_string()) bad("missing or non-string dtype");
        if (!v.contains("shape") || !v["shape"].is_array()) bad("missing or non-array shape");
        if (!v.contains("data_offsets") || !v["data_offsets"].is_array() ||
            v["data_offsets"].size() != 2)
            bad("data_offsets must be an array [begin, end]");
        TensorInfo t;
        t.name = name;
        auto dt = dtype_from_name(v["dtype"].get<std::string>());
        if (!dt)
            fail(where_, ": tensor '", name, "': unknown dtype '", v["dtype"].get<std::string>(),
                 "'");
        t.dtype = *dt;
        uint64_t numel = 1;
        bool overflow = false;
        for (const auto& d : v["shape"]) {
            if (!d.is_number_integer() || d.get<int64_t>() < 0)
                bad("shape has a non-integer or negative dimension");
            int64_t x = d.get<int64_t>();
            t.shape.push_back(x);
            if (x != 0 &&
                numel > std::numeric_limits<uint64_t>::max() / 64 / static_cast<uint64_t>(x))
                overflow = true;
            numel *= static_cast<uint64_t>(x);
        }
        if (overflow) bad("shape is too large");
        for (const auto& o : v["data_offsets"])
            if (!o.is_number_unsigned()) bad("data_offsets are not non-negative integers");
        t.begin = v["data_offsets"][0].get<uint64_t>();
        t.end = v["data_offsets"][1].get<uint64_t>();
        if (t.begin > t.end)
            fail(where_, ": tensor '", name, "': data_offsets [", t.begin, ", ", t.end,
                 "] are reversed");
        if (t.end > data_size)
            fail(where_, ": tensor '", name, "': data_offsets [", t.begin, ", ", t.end,
                 "] run past the end of the data (", data_size, " bytes at file offset ", 8 + hlen,
                 ")");
        const uint64_t want = numel * dtype_size(t.dtype);
        if (t.end - t.begin != want)
            fail(where_, ": tensor '", name, "': ", t.end - t.begin, " bytes of data but shape × ",
                 dtype_name(t.dtype), " needs ", want);
        t.data = data + t.begin;
        if (index_.count(name)) bad("appears twice in the header");
        index_[name] = tensors_.size();
        tensors_.push_back(std::move(t));
    }
    // Overlap check: sort the ranges by begin and compare neighbours.
    std::vector<const TensorInfo*> by_off;
    for (const auto& t : tensors_) by_off.push_back(&t);
    std::sort(by_off.begin(), by_off.end(), [](const TensorInfo* a, const TensorInfo* b) {
        return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
    });
    for (size_t i = 1; i < by_off.size(); ++i) {
        const TensorInfo* a = by_off[i - 1];
        const TensorInfo* b = by_off[i];
        if (b->begin < a->end && b->end > b->begin && a->end > a->begin)
            fail(where_, ": tensor '", b->name, "' (bytes ", b->begin, "..", b->end,
                 ") overlaps tensor '", a->name, "' (bytes ", a->begin, "..", a->end, ")");
    }
}

const TensorInfo* File::find(std::string_view name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& File::get(std::string_view name) const {
    const TensorInfo* t = find(name);
    if (!t) fail(where_, ": tensor '", name, "' not found");
    return *t;
}

std::vector<float> File::to_f32(const TensorInfo& t) const {
    const int64_t n = t.numel();
    std::vector<float> out(static_cast<size_t>(n));
    const uint8_t* p = t.data;
    auto rd = [&](auto tag, int64_t i) {
        decltype(tag) v;
        std::memcpy(&v, p + i * sizeof(v), sizeof(v));
        return v;
    };
    for (int64_t i = 0; i < n; ++i) {
        float f;
        switch (t.dtype) {
            case DType::F32:
                f = rd(float{}, i);
                break;
            case DType::F16:
                f = fp16_to_fp32(rd(uint16_t{}, i));
                break;
            case DType::BF16:
                f = bf16_to_fp32(rd(uint16_t{}, i));
                break;
            case DType::F64:
                f = static_cast<float>(rd(double{}, i));
                break;
            case DType::I64:
                f = static_cast<float>(rd(int64_t{}, i));
                break;
            case DType::I32:
                f = static_cast<float>(rd(int32_t{}, i));
                break;
            case DType::I16:
                f = static_cast<float>(rd(int16_t{}, i));
                break;
            case DType::I8:
                f = static_cast<float>(rd(int8_t{}, i));
                break;
            case DType::U8:
            case DType::BOOL:
                f = static_cast<float>(p[i]);
                break;
            case DType::U16:
                f = static_cast<float>(rd(uint16_t{}, i));
                break;
            case DType::U32:
                f = static_cast<float>(rd(uint32_t{}, i));
                break;
            case DType::U64:
                f = static_cast<float>(rd(uint64_t{}, i));
                break;
            default:
                fail(where_, ": tensor '", t.name, "': cannot convert ", dtype_name(t.dtype),
                     " to f32");
        }
        out[static_cast<size_t>(i)] = f;
    }
    return out;
}

}  // namespace duan::safetensors
