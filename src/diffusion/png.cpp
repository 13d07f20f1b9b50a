#include "diffusion/png.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb/stb_image_write.h>

namespace duan::diffusion {

namespace {

uint32_t crc32(const uint8_t* p, size_t n, uint32_t c = 0xFFFFFFFFu) {
    static uint32_t table[256];
    static bool init = [] {
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t v = i;
            for (int k = 0; k < 8; ++k) v = (v & 1) ? 0xEDB88320u ^ (v >> 1) : v >> 1;
            table[i] = v;
        }
        return true;
    }();
    (void)init;
    for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c;
}

void put_be32(std::vector<uint8_t>& v, uint32_t x) {
    for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<uint8_t>(x >> s));
}

uint32_t be32(const uint8_t* p) {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

}  // namespace

std::vector<uint8_t> encode_png(const uint8_t* rgb, int width, int height,
                                const std::vector<std::pair<std::string, std::string>>& text) {
    int len = 0;
    unsigned char* png = stbi_write_png_to_mem(rgb, width * 3, width, height, 3, &len);
    if (!png || len < 33) fail("PNG encoding of a ", width, "x", height, " image failed");
    // Signature (8) + IHDR chunk (4+4+13+4 = 25): the tEXt chunks go right after IHDR.
    std::vector<uint8_t> out(png, png + 33);
    for (const auto& [key, val] : text) {
        std::vector<uint8_t> body(key.begin(), key.end());
        body.push_back(0);
        body.insert(body.end(), val.begin(), val.end());
        put_be32(out, static_cast<uint32_t>(body.size()));
        const size_t type_at = out.size();
        out.insert(out.end(), {'t', 'E', 'X', 't'});
        out.insert(out.end(), body.begin(), body.end());
        put_be32(out, crc32(out.data() + type_at, out.size() - type_at) ^ 0xFFFFFFFFu);
    }
    out.insert(out.end(), png + 33, png + len);
    STBIW_FREE(png);
    return out;
}

void write_png(const std::string& path, const uint8_t* rgb, int width, int height,
               const std::vector<std::pair<std::string, std::string>>& text) {
    const std::vector<uint8_t> bytes = encode_png(rgb, width, height, text);
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) fail(path, ": cannot create: ", std::strerror(errno));
    const size_t n = std::fwrite(bytes.data(), 1, bytes.size(), f);
    const bool ok = std::fclose(f) == 0 && n == bytes.size();
    if (!ok) fail(path, ": write failed");
}

std::vector<std::pair<std::string, std::string>> png_text_chunks(const std::vector<uint8_t>& png) {
    std::vector<std::pair<std::string, std::string>> out;
    size_t i = 8;
    while (i + 12 <= png.size()) {
        const uint32_t n = be32(&png[i]);
        if (i + 12 + n > png.size()) break;
        if (std::memcmp(&png[i + 4], "tEXt", 4) == 0) {
            const char* b = reinterpret_cast<const char*>(&png[i + 8]);
            const size_t klen = strnlen(b, n);
            out.emplace_back(std::string(b, klen),
                             klen < n ? std::string(b + klen + 1, n - klen - 1) : std::string());
        }
        i += 12 + n;
    }
    return out;
}

}  // namespace duan::diffusion
