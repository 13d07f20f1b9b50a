// Importance matrix ("imatrix"): per input column of every weight matrix, the mean of x² over a
// calibration text, where x are the activations the matrix multiplies. Quantizers weight each
// column's rounding error by it (kernels::quantize_row_weighted), which lowers the error that
// matters at 2–4 bits.
//
// File format: the GGUF layout llama.cpp's imatrix tool writes (so files are interchangeable):
//   metadata  general.type = "imatrix", imatrix.datasets = [text file names],
//             imatrix.chunk_count (u32), imatrix.chunk_size (u32, tokens per chunk)
//   tensors   "<weight>.in_sum2"  F32 [n_cols × n_mat]   Σ x² per column (per expert matrix)
//             "<weight>.counts"   F32 [1 × n_mat]        number of activation rows summed
// The importance of column j is in_sum2[j] / counts. output.weight (and token_embd.weight, which
// only multiplies when tied to the output) are not collected, as in the reference.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "llm/context.h"
#include "llm/model.h"
#include "llm/quantize_model.h"

namespace duan {

class ImatrixCollector {
  public:
    explicit ImatrixCollector(const Model& model);
    // Installs the observer on ctx (the collector must outlive the decoding).
    void attach(Context& ctx);
    void observe(const kernels::Weight& W, const float* x, int64_t M);

    // Mean x² per column, keyed by weight name.
    ImatrixMap values() const;
    size_t n_entries() const { return stats_.size(); }
    void save(const std::string& path, const std::vector<std::string>& datasets, int chunk_count,
              int chunk_size) const;

  private:
    struct Stat {
        std::vector<double> sum2;
        int64_t count = 0;
    };
    std::map<const void*, std::string> names_;  // weight data pointer → tensor name
    std::map<std::string, Stat> stats_;
};

// Reads an imatrix GGUF; errors name the file and tensor.
ImatrixMap load_imatrix(const std::string& path);

}  // namespace duan
