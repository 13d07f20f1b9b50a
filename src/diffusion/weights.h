// Typed access to the tensors of a single-file SD checkpoint (safetensors, original LDM names).
// F32 matrices are used in place from the memory map; F16/BF16 ones are widened to f32 once (their
// Linear layers then round activations to f16, as the reference's F16 matmul does). Conv weights
// are rounded to f16 whatever their stored type (the reference always keeps conv kernels in F16).
#pragma once
#include <memory>
#include <string>

#include "diffusion/nn.h"
#include "format/safetensors.h"

namespace duan::diffusion {

class Checkpoint {
  public:
    explicit Checkpoint(const std::string& path);

    const safetensors::File& file() const { return file_; }
    bool has(const std::string& name) const { return file_.find(name) != nullptr; }
    // Throws naming the file and tensor when missing or of the wrong shape.
    Linear linear(const std::string& prefix, int64_t in, int64_t out, bool bias = true) const;
    Conv2d conv(const std::string& prefix, int in, int out, int k) const;
    Norm norm(const std::string& prefix, int64_t n) const;
    Mat matrix(const std::string& name, int64_t rows, int64_t cols) const;  // e.g. embeddings
    std::vector<float> vec(const std::string& name, int64_t n) const;
    // "F32", "F16", … of the first UNet weight (what the image's parameters report).
    std::string weight_type() const;

  private:
    const safetensors::TensorInfo& expect(const std::string& name, int64_t numel) const;
    safetensors::File file_;
};

}  // namespace duan::diffusion
