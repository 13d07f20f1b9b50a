// Typed access to the tensors of a Stable Diffusion checkpoint, whatever its container:
//  - a single-file safetensors checkpoint (original LDM key names);
//  - a GGUF written by `duan convert --sd` (same key names; weights F32/F16/Q8_0/Q4_0/Q4_K…);
//  - a diffusers folder (model_index.json, unet/ vae/ text_encoder/), whose keys are renamed to
//    the LDM names on open (diffusers.cpp).
// Every tensor is a view into a memory map. F32 matrices are used in place; F16/BF16 ones from
// safetensors are widened to f32 once (their Linear layers then round activations to f16, as the
// reference's F16 matmul does). Conv weights are rounded to f16 whatever their stored type (the
// reference always keeps conv kernels in F16). From GGUF, F16 and quantized 2-D weights stay in
// the map and run through kernels::matmul (activations quantized to the weight's dot type).
#pragma once
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/dtype.h"
#include "diffusion/nn.h"

namespace duan::gguf {
class File;
}
namespace duan::safetensors {
class File;
}

namespace duan::diffusion {

// One tensor of the checkpoint: shape outermost first (PyTorch order, whatever the container).
struct TensorView {
    std::string name;  // the LDM name
    DType type = DType::F32;
    std::vector<int64_t> shape;
    const uint8_t* data = nullptr;
    size_t n_bytes = 0;
    std::string source;  // file it lives in (for errors)
    int64_t numel() const;
};

class Checkpoint {
  public:
    // A .safetensors or .gguf file, or a diffusers folder.
    explicit Checkpoint(const std::string& path);
    ~Checkpoint();
    Checkpoint(const Checkpoint&) = delete;
    Checkpoint& operator=(const Checkpoint&) = delete;

    const std::string& path() const { return path_; }
    bool has(const std::string& name) const { return index_.count(name) != 0; }
    const TensorView* find(const std::string& name) const;
    // Throws naming the checkpoint and tensor when missing.
    const TensorView& get(const std::string& name) const;
    const std::vector<TensorView>& tensors() const { return tensors_; }
    // Throws naming the file and tensor when missing or of the wrong shape.
    Linear linear(const std::string& prefix, int64_t in, int64_t out, bool bias = true) const;
    // The weight of tensor `name` ([out][in], no bias): used in place from a GGUF map when its
    // type allows, else packed (e.g. OpenCLIP's fused in_proj_weight, named without ".weight").
    Linear linear_weight(const std::string& name, int64_t in, int64_t out) const;
    Conv2d conv(const std::string& prefix, int in, int out, int k) const;
    Norm norm(const std::string& prefix, int64_t n) const;
    Mat matrix(const std::string& name, int64_t rows, int64_t cols) const;  // e.g. embeddings
    std::vector<float> vec(const std::string& name, int64_t n) const;
    std::vector<float> to_f32(const TensorView& t) const;
    // "F32", "F16", "Q8_0", … of the first UNet weight that is a matrix (what the image's
    // parameters report).
    std::string weight_type() const;
    // Drops the mapped pages of every tensor whose name starts with `prefix` from this process's
    // resident memory (madvise DONTNEED on the read-only file map: a later access reads them
    // back from the page cache). The pipeline calls it when a component is done (text encoder
    // before the UNet runs, UNet before the VAE), so weights used in place (GGUF) do not add up.
    void release(const std::string& prefix) const;
    // "safetensors", "gguf" or "diffusers".
    const std::string& container() const { return container_; }

    // Used by the loaders: register a tensor (name already mapped to LDM).
    void add(TensorView t);
    void keep(std::shared_ptr<void> owner) { owners_.push_back(std::move(owner)); }
    // Registers the F32/F16/BF16 tensors of a safetensors file (integer buffers such as
    // position_ids are not used) and keeps the file mapped. rename: stored key -> LDM name (""
    // leaves the tensor out); with one, each tensor's source also names its stored key.
    void add_safetensors(std::shared_ptr<safetensors::File> f,
                         const std::function<std::string(const std::string&)>& rename = {});

  private:
    const TensorView& expect(const std::string& name, int64_t numel) const;
    void open_safetensors(const std::string& path);
    void open_gguf(const std::string& path);
    std::string path_, container_;
    std::vector<TensorView> tensors_;
    std::unordered_map<std::string, size_t> index_;
    std::vector<std::shared_ptr<void>> owners_;  // the mapped files
};

// The diffusers folder loader (diffusers.cpp): maps unet/, vae/, text_encoder/ keys to LDM names.
void open_diffusers(Checkpoint& ck, const std::string& dir);
// diffusers key -> LDM key ("" when the key is not used by duan). Exposed for tests.
// up_with_attn: indices of the up_blocks that have attentions (their up-sampler is then at
// output_blocks.N.2, else at .1).
std::string diffusers_unet_to_ldm(const std::string& key, const std::set<int>& up_with_attn);
std::string diffusers_vae_to_ldm(const std::string& key);

}  // namespace duan::diffusion
