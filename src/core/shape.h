// Tensor shapes as the formats hold them: a list of dimensions (PyTorch or GGML order alike).
#pragma once
#include <cstdint>
#include <vector>

namespace duan {

// Number of elements: the product of the dimensions (1 for a scalar's empty shape).
inline int64_t shape_numel(const std::vector<int64_t>& shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

}  // namespace duan
