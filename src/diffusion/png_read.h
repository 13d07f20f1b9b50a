// PNG input (img2img init images, images received from a server), through Debian's stb_image.
// Only PNG is accepted: anything else is refused by its signature with an error naming the file.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace duan::diffusion {

struct Rgb8Image {
    int width = 0, height = 0;
    std::vector<uint8_t> rgb;  // H·W·3 interleaved (gray and alpha are converted / dropped)
};

// Throws duan::Error naming `what` (a path or "the response") for a non-PNG, a corrupt PNG, or
// one larger than max_side pixels on a side.
Rgb8Image decode_png(const uint8_t* data, size_t size, const std::string& what,
                     int max_side = 8192);
Rgb8Image read_png(const std::string& path, int max_side = 8192);

}  // namespace duan::diffusion
