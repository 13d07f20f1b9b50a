// PNG output for generated images: 8-bit RGB through stb_image_write, plus tEXt chunks (the
// "parameters" chunk A1111 writes, which image viewers and web UIs read back).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace duan::diffusion {

// rgb: H·W·3 bytes, row-major, interleaved. Throws duan::Error naming the path on failure.
void write_png(const std::string& path, const uint8_t* rgb, int width, int height,
               const std::vector<std::pair<std::string, std::string>>& text = {});

// Encoded PNG bytes (same content as write_png would store).
std::vector<uint8_t> encode_png(const uint8_t* rgb, int width, int height,
                                const std::vector<std::pair<std::string, std::string>>& text = {});

// Reads back the tEXt chunks of an encoded PNG (for tests and tools).
std::vector<std::pair<std::string, std::string>> png_text_chunks(const std::vector<uint8_t>& png);

}  // namespace duan::diffusion
