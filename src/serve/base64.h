// Standard base64 (RFC 4648, with padding): the b64_json images and the JSON latents.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace duan::serve {

std::string base64_encode(const uint8_t* data, size_t n);
// nullopt for anything that is not canonical padded base64 (whitespace is not accepted).
std::optional<std::vector<uint8_t>> base64_decode(std::string_view s);

}  // namespace duan::serve
