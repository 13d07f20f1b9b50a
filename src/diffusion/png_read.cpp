#include "diffusion/png_read.h"

#include <cstring>
#include <fstream>
#include <iterator>

#include "core/error.h"

// Static: tests/test_sd_model.cpp has its own STB_IMAGE_IMPLEMENTATION; the functions of this
// translation unit stay private to it. PNG only (smaller, and nothing else is accepted anyway).
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_NO_STDIO
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace duan::diffusion {

Rgb8Image decode_png(const uint8_t* data, size_t size, const std::string& what, int max_side) {
    static const uint8_t kSig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (size < 8 || std::memcmp(data, kSig, 8) != 0)
        fail(what, ": not a PNG file (no PNG signature); give a PNG image");
    if (size > static_cast<size_t>(INT32_MAX)) fail(what, ": file too large");
    int w = 0, h = 0, comp = 0;
    if (!stbi_info_from_memory(data, static_cast<int>(size), &w, &h, &comp))
        fail(what, ": corrupt or unsupported PNG (", stbi_failure_reason(), ")");
    if (w <= 0 || h <= 0 || w > max_side || h > max_side)
        fail(what, ": PNG is ", w, "x", h, " pixels; at most ", max_side, " on a side");
    unsigned char* px = stbi_load_from_memory(data, static_cast<int>(size), &w, &h, &comp, 3);
    if (!px) fail(what, ": corrupt or unsupported PNG (", stbi_failure_reason(), ")");
    Rgb8Image img;
    img.width = w;
    img.height = h;
    img.rgb.assign(px, px + static_cast<size_t>(w) * h * 3);
    stbi_image_free(px);
    return img;
}

Rgb8Image read_png(const std::string& path, int max_side) {
    std::ifstream f(path, std::ios::binary);
    if (!f) fail(path, ": cannot open");
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)),
                               std::istreambuf_iterator<char>());
    return decode_png(bytes.data(), bytes.size(), path, max_side);
}

}  // namespace duan::diffusion
