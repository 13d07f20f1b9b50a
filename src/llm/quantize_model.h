// Whole-model quantization: GGUF in → GGUF out with a per-tensor type mix.
//
// The per-tensor rules follow the established llama.cpp mixes ("Q4_K_M" etc.), so a file made here
// has the same types per tensor — and, because kernels::quantize_row is byte-identical to the
// reference quantizer, the same bytes — as the file a user downloads under that name:
//   - only 2-D+ tensors whose name ends in "weight" and is not a norm are quantized;
//   - output.weight (and token_embd.weight when the output is tied to it) → Q6_K for every
//   quantized
//     mix except Q8_0 (Q8_0 when the row length is not a multiple of the block size);
//   - the _M / _L mixes raise attn_v and ffn_down in selected layers (use_more_bits: the first and
//     last eighth of the layers and every third layer in between), Q2_K/Q3_K mixes raise
//     attn_output;
//   - a tensor whose row length does not fit the chosen type's block falls back to a compatible
//     type (Q2_K/Q3_K → Q4_0, Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0; F16 when even 32 does not
//     divide it) and the log says so. (The reference refuses the legacy-type case; we fall back.)
// Tensors are written in the reference's order: globals first, then blk.0, blk.1, … each sorted by
// name, so whole files match the reference's byte for byte.
//
// Streaming: the input is memory-mapped; each tensor is converted row-chunk by row-chunk into one
// output buffer of its quantized size and appended to the output file (tmp + rename). Peak memory
// is one quantized tensor plus a chunk of f32 rows per thread.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "format/gguf.h"

namespace duan {

// llama_ftype numbering (stored as general.file_type).
enum class FileType : uint32_t {
    ALL_F32 = 0,
    MOSTLY_F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q8_0 = 7,
    Q5_0 = 8,
    Q5_1 = 9,
    Q2_K = 10,
    Q3_K_S = 11,
    Q3_K_M = 12,
    Q3_K_L = 13,
    Q4_K_S = 14,
    Q4_K_M = 15,
    Q5_K_S = 16,
    Q5_K_M = 17,
    Q6_K = 18,
    MOSTLY_BF16 = 32,
};

// "Q4_K_M", "q4_k_m", "F16", "bf16", "f32"… ; nullopt if unknown.
std::optional<FileType> file_type_from_name(std::string_view name);
const char* file_type_name(FileType t);  // "Q4_K_M"
// The base tensor type of a mix (Q4_K for Q4_K_M, F16 for MOSTLY_F16, …).
DType file_type_base(FileType t);
// Names of every supported mix, for help texts.
std::string file_type_list();

// Per-column importance (mean of x² over the calibration tokens) keyed by tensor name.
using ImatrixMap = std::map<std::string, std::vector<float>>;

struct QuantizeOptions {
    FileType ftype = FileType::Q8_0;
    int n_threads = 0;                    // 0 = default_thread_count()
    const ImatrixMap* imatrix = nullptr;  // optional
    bool allow_requantize = false;        // input tensors that are already quantized
    bool pure = false;                    // every quantizable tensor gets the base type (no mix)
    std::function<void(const std::string&)> log;  // one line per tensor / warning; may be empty
};

// The decision for one tensor.
struct TensorPlan {
    std::string name;
    DType from = DType::F32, to = DType::F32;
    std::vector<int64_t> ne;
    std::string note;  // fallback explanation, "" if none
};

// The per-tensor types for `in` (in output order). Pure function of the file's names, shapes and
// hyper-parameters (block_count, head_count, head_count_kv) — exposed so tests can check mixes.
std::vector<TensorPlan> plan_quantization(const gguf::File& in, const QuantizeOptions& opts);

struct QuantizeResult {
    uint64_t bytes_in = 0, bytes_out = 0;  // tensor data only
    int64_t n_elements = 0;
    int n_fallback = 0;
    double bits_per_weight() const { return n_elements ? 8.0 * bytes_out / n_elements : 0; }
};

// Quantizes in_path into out_path (written via tmp + rename). Throws duan::Error naming the file
// and tensor on any problem (unknown arch hparams, requantize without permission, I/O).
QuantizeResult quantize_model(const std::string& in_path, const std::string& out_path,
                              const QuantizeOptions& opts);

}  // namespace duan
