// Stable Diffusion checkpoint -> GGUF (`duan convert --sd IN OUT --type q8_0`). Input: anything
// Checkpoint opens (single-file safetensors, diffusers folder, GGUF); tensor names are the LDM
// ones (model.diffusion_model.*, first_stage_model.*, cond_stage_model.*), shapes as in the
// checkpoint (GGUF order: ne[0] innermost).
//
// Which tensors get the requested type (following stable-diffusion.cpp's rule, with one change):
//  - 2-D weights whose row length (input features) is a multiple of the type's block size;
//    the others (e.g. 320-wide rows under Q4_K's 256-blocks) are written F16;
//  - kept in the source type (F32 or F16; BF16 becomes F32): biases and every 1-D tensor (norms),
//    time_embed.* and label_emb.* (tiny, sensitive), token/position embeddings (only the looked-up
//    rows are ever read from the map);
//  - conv kernels (4-D) are F16: their GGUF row is the kernel width (3 or 1), never a block
//    multiple, so stable-diffusion.cpp leaves them unquantized too; F16 is what the reference
//    computes convolutions in whatever the stored type, so this loses nothing.
#pragma once
#include <functional>
#include <string>

#include "core/dtype.h"

namespace duan::diffusion {

struct SdConvertOptions {
    DType type = DType::F16;  // F32, F16, Q8_0, Q4_0, Q4_K (any type with a quantizer)
    std::function<void(const std::string&)> log;
};

// The type `name` (of `shape`, PyTorch order, stored as `src`) gets under `target`.
DType sd_tensor_type(const std::string& name, const std::vector<int64_t>& shape, DType src,
                     DType target);

void convert_sd_to_gguf(const std::string& in, const std::string& out, const SdConvertOptions& o);

}  // namespace duan::diffusion
