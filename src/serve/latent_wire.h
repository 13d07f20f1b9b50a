// The latent of the device/cloud split on the wire (docs/SERVING.md, "Images"):
//   values: z = final_latent / scale, the VAE decoder's input, NCHW [1][4][H/8][W/8]; scale is
//           the model's (0.18215 SD 1.x/2.x, 0.13025 SDXL), sent along so that the device can
//           check that its VAE is of the same kind;
//   format: "f16" (IEEE half, the default: 32 KB for 512×512) or "f32"; little-endian.
// Why z and why f16 is lossless here: the decoder's first layer (post_quant_conv, like every conv
// of duan and the reference) rounds its input to f16, so f16(z) is exactly what it reads: a
// device decoding the f16 wire latent gets the image a local run gets, bit for bit.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace duan::serve {

enum class LatentFormat { F16, F32 };

// "f16" / "f32"; anything else throws duan::Error.
LatentFormat latent_format_from_name(const std::string& s);
const char* latent_format_name(LatentFormat f);
size_t latent_value_bytes(LatentFormat f);

std::vector<uint8_t> pack_latent(const std::vector<float>& z, LatentFormat f);
// Throws duan::Error when the byte count is not count values of the format.
std::vector<float> unpack_latent(const uint8_t* data, size_t size, LatentFormat f, size_t count);

// HTTP headers of the application/octet-stream answer of POST /v1/images/latents.
inline constexpr const char* kLatentShapeHeader = "X-Duan-Latent-Shape";    // "1,4,64,64"
inline constexpr const char* kLatentFormatHeader = "X-Duan-Latent-Format";  // "f16"
inline constexpr const char* kLatentSpaceHeader = "X-Duan-Latent-Space";    // "vae_input"
inline constexpr const char* kSeedHeader = "X-Duan-Seed";
inline constexpr const char* kLatentScaleHeader = "X-Duan-Latent-Scale";    // "0.13025"
inline constexpr const char* kModelVariantHeader = "X-Duan-Model-Variant";  // sd1|sd2|sdxl

}  // namespace duan::serve
