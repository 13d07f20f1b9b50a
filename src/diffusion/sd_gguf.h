// Stable Diffusion checkpoint -> GGUF (`duan convert --sd IN OUT --type q8_0`). Input: anything
// Checkpoint opens (single-file safetensors, diffusers folder, GGUF); tensor names are the LDM
// ones (model.diffusion_model.*, first_stage_model.*, cond_stage_model.*), shapes as in the
// checkpoint (GGUF order: ne[0] innermost).
//
// Which tensors get the requested type (following stable-diffusion.cpp's rule, with one change):
//  - 2-D weights whose row length (input features) is a multiple of the type's block size;
//    the others (e.g. 320-wide rows under Q4_K's 256-blocks) are written F16;
//  - kept in the source type (F32 or F16; BF16 becomes F32): biases and every 1-D tensor (norms),
//    time_embed.* and label_emb.* (tiny, sensitive);
//  - token/position embeddings: F32 (used in place: only the looked-up rows are ever read from
//    the map, where an F16 table would be widened to 150 MB of heap);
//  - UNet conv kernels [out][in][k][k] with out >= 32 and in·k·k a multiple of the block
//    (unless quantize_convs is off): the type, written as a 2-D tensor ne = [in·k·k, out] (the
//    row of the im2col GEMM). Here duan departs from stable-diffusion.cpp, which keeps every conv
//    in the source type (its GGUF row is the kernel width, never a block multiple): SD 1.5's UNet
//    convs are 1.1 GB in F16 against 0.6 GB in Q8_0, the difference between fitting a phone's
//    2 GB or not. Such files need duan (`--keep-conv-f16` writes stable-diffusion.cpp's layout);
//  - every other conv kernel (VAE, the 4-channel UNet conv_in/conv_out): F16. The reference
//    computes convolutions in F16 whatever the stored type, so this loses nothing.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/shape.h"
#include "format/gguf.h"

namespace duan::diffusion {

struct SdConvertOptions {
    DType type = DType::F16;  // F32, F16, Q8_0, Q4_0, Q4_K (any type with a quantizer)
    bool quantize_convs = true;
    std::function<void(const std::string&)> log;
};

// The type `name` (of `shape`, PyTorch order, stored as `src`) gets under `target`.
DType sd_tensor_type(const std::string& name, const std::vector<int64_t>& shape, DType src,
                     DType target, bool quantize_convs = true);

// One tensor to write: its LDM name, PyTorch-order shape and the type it comes in (which decides
// what "keep the source type" means for biases and norms).
struct SdTensorSource {
    std::string name;
    std::vector<int64_t> shape;
    DType type = DType::F32;
    int64_t numel() const { return shape_numel(shape); }
};

// Writes `tensors` as an SD GGUF, typing each with sd_tensor_type; data(i) gives tensor i's
// values as F32 (called once per tensor, in order, so memory stays at one tensor); meta adds keys.
void write_sd_gguf(const std::string& out, const std::vector<SdTensorSource>& tensors,
                   const std::function<std::vector<float>(size_t)>& data, const SdConvertOptions& o,
                   const std::function<void(gguf::Metadata&)>& meta = {});

void convert_sd_to_gguf(const std::string& in, const std::string& out, const SdConvertOptions& o);

}  // namespace duan::diffusion
