// Hugging Face checkpoint → GGUF, for the llama, qwen2 and qwen3 architectures.
//
// Reads from the model folder:
//   config.json                      architecture and hyper-parameters (required keys are checked
//                                    and named in errors)
//   model.safetensors, or model.safetensors.index.json + its shards
//   tokenizer.json                   byte-level BPE vocabulary + merges; added_tokens become
//                                    CONTROL (special) or USER_DEFINED tokens
//   tokenizer_config.json (optional) chat_template, bos/eos/pad/unk tokens, add_bos_token
//   chat_template.jinja (optional)   used when tokenizer_config.json has no chat_template
// and writes what the reference converter (convert_hf_to_gguf.py) writes for these models:
//   - tensor names token_embd / blk.N.attn_q … / output_norm / output; LLaMA Q/K rows permuted from
//     HF's rotate-half layout to GGUF's interleaved-pair ("normal" RoPE) layout:
//       gguf_row[h·hd + 2b + a] = hf_row[h·hd + a·hd/2 + b]   (a ∈ {0,1}, b < hd/2)
//   - tokenizer.ggml.model "gpt2", tokenizer.ggml.pre "qwen2" (Qwen) / "llama-bpe" (Llama 3),
//     recognised from the pre-tokenizer regex; ids without a token become "[PAD<i>]" UNUSED;
//   - Llama 3.1 "llama3" rope scaling as the rope_freqs.weight factors tensor.
// Tensor types: 1-D tensors stay F32; matrices get --type (F32, F16, BF16, Q8_0 directly; any other
// quantize mix goes through an F32 intermediate file and quantize_model()).
#pragma once
#include <functional>
#include <string>

#include "llm/quantize_model.h"

namespace duan {

struct ConvertOptions {
    std::string type = "f16";  // f32, f16, bf16, or a quantize mix name (q8_0, q4_k_m, …)
    bool vocab_only = false;   // write only the tokenizer metadata (no tensors)
    int n_threads = 0;
    std::function<void(const std::string&)> log;
};

// Converts the checkpoint in hf_dir to out_path (tmp + rename). Throws duan::Error naming the file
// and the key or tensor at fault.
void convert_hf(const std::string& hf_dir, const std::string& out_path, const ConvertOptions& opts);

}  // namespace duan
