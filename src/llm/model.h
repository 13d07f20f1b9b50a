// A loaded language model: the mapped GGUF file, hyper-parameters, weight views into the mapping,
// and the tokenizer. Immutable after load, so any number of Contexts (and threads) can share it.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "format/gguf.h"
#include "kernels/matmul.h"
#include "llm/hparams.h"
#include "tokenizer/tokenizer.h"

namespace duan {

// Per-layer weights. Matrices are [out rows × in cols] views into the file; vectors are f32
// pointers into the file (nullptr when the architecture has none).
struct LayerWeights {
    const float* attn_norm = nullptr;  // [n_embd]
    kernels::Weight wq, wk, wv;        // [q_dim × n_embd], [kv_dim × n_embd] ×2
    const float* bq = nullptr;         // [q_dim]   (qwen2)
    const float* bk = nullptr;         // [kv_dim]  (qwen2)
    const float* bv = nullptr;         // [kv_dim]  (qwen2)
    const float* q_norm = nullptr;     // [head_dim] per-head RMSNorm (qwen3)
    const float* k_norm = nullptr;     // [head_dim] (qwen3)
    kernels::Weight wo;                // [n_embd × q_dim]
    const float* ffn_norm = nullptr;   // [n_embd]
    kernels::Weight w_gate, w_up;      // [n_ff × n_embd]
    kernels::Weight w_down;            // [n_embd × n_ff]
};

struct ModelWeights {
    kernels::Weight tok_embd;            // [n_vocab × n_embd]
    const float* output_norm = nullptr;  // [n_embd]
    kernels::Weight output;              // [n_vocab × n_embd] (token_embd when tied)
    const float* rope_freqs = nullptr;   // [n_rot/2] per-pair frequency divisors, optional
    std::vector<LayerWeights> layers;
};

class Model {
public:
    // Loads and validates: every tensor the architecture needs must be present with the right
    // shape and a type the kernels read; errors name the file and the tensor.
    static std::unique_ptr<Model> load(const std::string& path);

    const HParams& hparams() const { return hp_; }
    const ModelWeights& weights() const { return w_; }
    const Tokenizer& tokenizer() const { return *tok_; }
    const gguf::File& file() const { return *file_; }
    // tokenizer.chat_template source, "" if none.
    const std::string& chat_template_source() const { return chat_template_; }
    // The built-in template this model's source was recognised as, "" if unknown.
    std::string chat_template_name() const;
    // Bytes of tensor data (what decode reads per token, roughly).
    uint64_t weight_bytes() const;

private:
    friend struct ArchLoader;
    std::unique_ptr<gguf::File> file_;
    HParams hp_;
    ModelWeights w_;
    std::unique_ptr<Tokenizer> tok_;
    std::string chat_template_;
};

// Architecture registry: each arch_<name>.cpp fills hyper-parameters and weights from the file.
struct ArchLoader {
    const char* name;
    void (*load)(Model& m);
    // helpers shared by the architecture files
    static const gguf::File& file(Model& m) { return *m.file_; }
    static HParams& hparams(Model& m) { return m.hp_; }
    static ModelWeights& weights(Model& m) { return m.w_; }
    // A matrix [rows × cols] (GGUF ne = {cols, rows}) the kernels can multiply.
    static kernels::Weight matrix(Model& m, const std::string& name, int64_t rows, int64_t cols,
                                  bool optional = false);
    // An f32 vector of n elements.
    static const float* vector(Model& m, const std::string& name, int64_t n, bool optional = false);
    // The standard llama-family block tensors (norms, q/k/v/o, gated FFN) of layer il.
    static LayerWeights llama_layer(Model& m, int il);
    // token_embd, output_norm, and output (falls back to token_embd when absent: tied).
    static void llama_globals(Model& m);
};

const ArchLoader* find_arch(const std::string& name);

}  // namespace duan
