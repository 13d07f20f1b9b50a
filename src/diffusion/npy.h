// Minimal .npy (NumPy format v1/v2) reader and writer for the reference dumps and --save-latent.
// Reads little-endian f4/f8/f2/i4/i8/u1 C-order arrays and converts to float (ints also kept as
// int64 so token ids stay exact); writes f4.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace duan::diffusion {

struct NpyArray {
    std::vector<int64_t> shape;
    std::vector<float> data;    // every dtype converted to float
    std::vector<int64_t> ints;  // filled for integer dtypes only
    int64_t numel() const;
};

// Throws duan::Error naming the file on a bad magic, header, dtype or short data.
NpyArray npy_read(const std::string& path);
void npy_write(const std::string& path, const std::vector<int64_t>& shape, const float* data);

}  // namespace duan::diffusion
