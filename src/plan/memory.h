// Memory model: what running a model with duan holds in RAM, line by line.
//
//   weights    the GGUF file is mmapped and every page is touched by the first forward pass, so
//              resident = file size (tensor bytes, exact from the tensor table, + header/metadata)
//   KV cache   n_layer × n_seq × n_ctx × n_head_kv rows of head_dim elements, for K and for V,
//              each row dtype_row_bytes(cache type, head_dim) (llm/context.cpp allocates exactly
//              this)
//   compute    per-ubatch f32 activations (x, cur, q, k, v, attn, ffn gate/up), the matmul's
//              quantized copy of the widest activation, attention scores per thread, the logits
//   tokenizer  vocabulary and merges parsed into heap structures (plus the metadata copy)
//   runtime    the process itself: code, libc/libstdc++, thread stacks, allocator slack
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "format/gguf.h"
#include "llm/presets.h"

namespace duan::plan {

enum class TensorRole { Embedding, Output, Matrix, Vector };

struct TensorShape {
    std::string name;
    DType type = DType::F32;
    int64_t cols = 0, rows = 1;  // GGUF ne[0], ne[1]
    TensorRole role = TensorRole::Matrix;
    uint64_t bytes = 0;
};

// How a preset's tensors are typed when only "type T" is given.
//   Uniform   every 2-D tensor at T (duan synth --pure, llama-quantize --pure), norms f32
//   LlamaCpp  as llama.cpp's quantize and duan synth: output (or tied token_embd) at q6_k, the
//             _K_M mixes' extra bits on attn_v/ffn_down, K-quant fallbacks for odd rows
//   GptqLike  token embeddings and output head kept at f16, block matrices at T (the GPTQ files
//             the seed measured keep wte and lm_head unquantized)
enum class Layout { Uniform, LlamaCpp, GptqLike };
const char* layout_name(Layout l);

struct ModelShape {
    std::string name;  // preset name or file path
    std::string type;  // "q4_0", or the file's dominant matrix type
    int64_t n_vocab = 0, n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ff = 0,
            n_ctx_train = 0;
    bool tied_output = false;
    std::vector<TensorShape> tensors;
    uint64_t file_bytes = 0;      // the whole file (tensors + header + metadata + padding)
    uint64_t metadata_bytes = 0;  // header + metadata (the tokenizer arrays live here)
    bool from_file = false;

    int64_t q_dim() const { return n_head * head_dim; }
    int64_t kv_dim() const { return n_head_kv * head_dim; }
    uint64_t tensor_bytes() const;
    uint64_t n_params() const;
};

// Shape and exact tensor sizes of a preset at a type name as duan synth takes it ("q4_0",
// "q4_k_m", "f16", …): the same tensor table synth writes (llm/synth.h). The metadata size is
// estimated from the vocabulary (tokens + merges + types).
ModelShape shape_from_preset(const Preset& p, const std::string& type,
                             Layout layout = Layout::LlamaCpp);
// Shape from a GGUF's metadata and tensor table (exact bytes).
ModelShape shape_from_gguf(const gguf::File& f);

struct RunShape {
    int n_ctx = 4096;
    int n_seq = 1;
    int n_ubatch = 512;  // tokens per forward pass (the prompt is evaluated in chunks of this)
    int n_threads = 0;   // 0 = hardware threads of this machine
    DType cache_k = DType::F16, cache_v = DType::F16;
};

struct MemLine {
    std::string name;  // "weights", "kv_cache", "compute", "tokenizer", "runtime"
    uint64_t bytes = 0;
    std::string detail;  // how it was computed, for the reader
};

struct MemoryPlan {
    std::vector<MemLine> lines;
    uint64_t weights = 0, kv_cache = 0, compute = 0, tokenizer = 0, runtime = 0;
    uint64_t total() const { return weights + kv_cache + compute + tokenizer + runtime; }
};

// Measured constants (docs/PLANNING.md, "Memory model"): heap per vocabulary entry beyond the
// metadata copy, resident size of the duan process before it loads anything, per worker thread.
constexpr uint64_t kTokenizerBytesPerToken = 160;
constexpr uint64_t kRuntimeBytes = 8'000'000;
constexpr uint64_t kThreadBytes = 64'000;

uint64_t kv_cache_bytes(const ModelShape& m, const RunShape& r);
MemoryPlan plan_memory(const ModelShape& m, const RunShape& r);

// "1.23 GB" (10^9, as the seed and vendors write sizes) and "1.15 GiB".
std::string gb(uint64_t bytes);
std::string gib(uint64_t bytes);

}  // namespace duan::plan
