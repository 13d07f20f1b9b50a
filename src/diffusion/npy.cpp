#include "diffusion/npy.h"

#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "core/error.h"
#include "core/fp16.h"
#include "core/shape.h"

namespace duan::diffusion {

int64_t NpyArray::numel() const {
    return shape_numel(shape);
}

namespace {
// Finds 'key': value in the header dict text; returns the raw value text.
std::string dict_value(const std::string& h, const std::string& key, const std::string& path) {
    size_t k = h.find("'" + key + "'");
    if (k == std::string::npos) fail(path, ": npy header has no '", key, "'");
    size_t c = h.find(':', k);
    if (c == std::string::npos) fail(path, ": npy header malformed near '", key, "'");
    return h.substr(c + 1);
}
}  // namespace

NpyArray npy_read(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) fail(path, ": cannot open");
    std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0)
        fail(path, ": not a .npy file (bad magic)");
    const int major = static_cast<uint8_t>(bytes[6]);
    size_t hlen, off;
    if (major == 1) {
        hlen = static_cast<uint8_t>(bytes[8]) | (static_cast<uint8_t>(bytes[9]) << 8);
        off = 10;
    } else {
        if (bytes.size() < 12) fail(path, ": truncated npy header");
        hlen = 0;
        for (int i = 3; i >= 0; --i) hlen = (hlen << 8) | static_cast<uint8_t>(bytes[8 + i]);
        off = 12;
    }
    if (off + hlen > bytes.size()) fail(path, ": npy header runs past the end");
    const std::string h = bytes.substr(off, hlen);
    std::string descr = dict_value(h, "descr", path);
    size_t q1 = descr.find('\''), q2 = descr.find('\'', q1 + 1);
    if (q1 == std::string::npos || q2 == std::string::npos) fail(path, ": bad descr");
    descr = descr.substr(q1 + 1, q2 - q1 - 1);
    if (dict_value(h, "fortran_order", path).find("False") > 8)
        fail(path, ": Fortran-order arrays are not supported");
    std::string sh = dict_value(h, "shape", path);
    size_t p1 = sh.find('('), p2 = sh.find(')');
    if (p1 == std::string::npos || p2 == std::string::npos) fail(path, ": bad shape");
    NpyArray a;
    std::stringstream ss(sh.substr(p1 + 1, p2 - p1 - 1));
    std::string item;
    while (std::getline(ss, item, ',')) {
        if (item.find_first_not_of(" ") == std::string::npos) continue;
        a.shape.push_back(std::stoll(item));
    }
    const int64_t n = a.numel();
    size_t es;
    if (descr == "<f4" || descr == "<i4" || descr == "<u4")
        es = 4;
    else if (descr == "<f8" || descr == "<i8")
        es = 8;
    else if (descr == "<f2")
        es = 2;
    else if (descr == "|u1" || descr == "|i1" || descr == "|b1")
        es = 1;
    else
        fail(path, ": unsupported npy dtype '", descr, "'");
    const char* d = bytes.data() + off + hlen;
    if (bytes.size() - off - hlen < static_cast<size_t>(n) * es)
        fail(path, ": npy data is shorter than shape × ", es, " bytes");
    a.data.resize(n);
    const bool is_int = descr[1] == 'i' || descr[1] == 'u' || descr[1] == 'b';
    if (is_int) a.ints.resize(n);
    for (int64_t i = 0; i < n; ++i) {
        const char* e = d + i * es;
        if (descr == "<f4") {
            float v;
            std::memcpy(&v, e, 4);
            a.data[i] = v;
        } else if (descr == "<f8") {
            double v;
            std::memcpy(&v, e, 8);
            a.data[i] = static_cast<float>(v);
        } else if (descr == "<f2") {
            uint16_t v;
            std::memcpy(&v, e, 2);
            a.data[i] = fp16_to_fp32(v);
        } else {
            int64_t v = 0;
            if (descr == "<i4") {
                int32_t x;
                std::memcpy(&x, e, 4);
                v = x;
            } else if (descr == "<u4") {
                uint32_t x;
                std::memcpy(&x, e, 4);
                v = x;
            } else if (descr == "<i8") {
                std::memcpy(&v, e, 8);
            } else if (descr == "|i1") {
                v = static_cast<int8_t>(*e);
            } else {
                v = static_cast<uint8_t>(*e);
            }
            a.ints[i] = v;
            a.data[i] = static_cast<float>(v);
        }
    }
    return a;
}

void npy_write(const std::string& path, const std::vector<int64_t>& shape, const float* data) {
    std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
    int64_t n = 1;
    for (size_t i = 0; i < shape.size(); ++i) {
        h += std::to_string(shape[i]) + (shape.size() == 1 || i + 1 < shape.size() ? ", " : "");
        n *= shape[i];
    }
    if (!shape.empty() && shape.size() > 1) h.resize(h.size());
    h += "), }";
    while ((10 + h.size() + 1) % 64) h += ' ';
    h += '\n';
    std::ofstream f(path, std::ios::binary);
    if (!f) fail(path, ": cannot create");
    f.write("\x93NUMPY\x01\x00", 8);
    const uint16_t hl = static_cast<uint16_t>(h.size());
    const char hb[2] = {static_cast<char>(hl & 0xff), static_cast<char>(hl >> 8)};
    f.write(hb, 2);
    f.write(h.data(), static_cast<std::streamsize>(h.size()));
    f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(n * 4));
    if (!f) fail(path, ": write failed");
}

}  // namespace duan::diffusion
