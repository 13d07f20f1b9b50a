#include "serve/latent_wire.h"

#include <cstring>

#include "core/error.h"
#include "core/fp16.h"

namespace duan::serve {

LatentFormat latent_format_from_name(const std::string& s) {
    if (s == "f16") return LatentFormat::F16;
    if (s == "f32") return LatentFormat::F32;
    fail("unknown latent format '", s, "' (expected f16 or f32)");
}

const char* latent_format_name(LatentFormat f) {
    return f == LatentFormat::F16 ? "f16" : "f32";
}

size_t latent_value_bytes(LatentFormat f) {
    return f == LatentFormat::F16 ? 2 : 4;
}

std::vector<uint8_t> pack_latent(const std::vector<float>& z, LatentFormat f) {
    std::vector<uint8_t> out(z.size() * latent_value_bytes(f));
    for (size_t i = 0; i < z.size(); ++i) {
        if (f == LatentFormat::F16) {
            const uint16_t h = fp32_to_fp16(z[i]);
            out[2 * i] = static_cast<uint8_t>(h);
            out[2 * i + 1] = static_cast<uint8_t>(h >> 8);
        } else {
            const uint32_t u = f32_bits(z[i]);
            for (int b = 0; b < 4; ++b) out[4 * i + b] = static_cast<uint8_t>(u >> (8 * b));
        }
    }
    return out;
}

std::vector<float> unpack_latent(const uint8_t* p, size_t size, LatentFormat f, size_t count) {
    const size_t vb = latent_value_bytes(f);
    if (size != count * vb)
        fail("latent: ", size, " bytes, expected ", count, " ", latent_format_name(f), " values (",
             count * vb, " bytes)");
    std::vector<float> z(count);
    for (size_t i = 0; i < count; ++i) {
        if (f == LatentFormat::F16) {
            z[i] = fp16_to_fp32(static_cast<uint16_t>(p[2 * i] | (p[2 * i + 1] << 8)));
        } else {
            uint32_t u = 0;
            for (int b = 0; b < 4; ++b) u |= uint32_t{p[4 * i + b]} << (8 * b);
            z[i] = f32_from_bits(u);
        }
    }
    return z;
}

}  // namespace duan::serve
