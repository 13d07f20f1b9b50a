// The two noise generators of the reference, reproduced bit for bit (with glibc's logf/sinf/cosf).
//  - TorchCpuRng ("--rng cpu"): PyTorch's CPU torch.randn: MT19937 with standard seeding; n >= 16
//    normals come from float Box-Muller over 24-bit uniforms in blocks of 16 (u1 = 1-u[j],
//    u2 = u[j+8]); a tail n % 16 redraws 16 uniforms and recomputes the last 16 outputs; n < 16
//    uses the double-precision path with 53-bit uniforms.
//  - PhiloxRng ("--rng cuda", the reference's default): A1111's Philox4x32-10 with counter
//    (offset, 0, i, 0) and key (seed lo, seed hi); offset counts the draws (0 first, +1 each).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace duan::diffusion {

class Rng {
  public:
    virtual ~Rng() = default;
    // n standard normals; successive calls continue the stream.
    virtual std::vector<float> randn(size_t n) = 0;
};

class Mt19937 {
  public:
    explicit Mt19937(uint32_t seed);
    uint32_t next();

  private:
    void twist();
    uint32_t st_[624];
    int idx_ = 624;
};

class TorchCpuRng : public Rng {
  public:
    explicit TorchCpuRng(uint64_t seed) : mt_(static_cast<uint32_t>(seed)) {}
    std::vector<float> randn(size_t n) override;

  private:
    Mt19937 mt_;
};

class PhiloxRng : public Rng {
  public:
    explicit PhiloxRng(uint64_t seed) : seed_(seed) {}
    std::vector<float> randn(size_t n) override;

  private:
    uint64_t seed_;
    uint32_t offset_ = 0;
};

// "cpu" or "cuda"; throws on anything else.
std::unique_ptr<Rng> make_rng(const std::string& kind, uint64_t seed);

}  // namespace duan::diffusion
