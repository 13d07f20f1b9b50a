// An evaluation context: the KV cache of up to n_seq sequences, scratch buffers and a thread pool.
// decode() runs the transformer over a batch of tokens (any mix of sequences and positions) and
// returns the logits of the tokens that ask for them. One Context is used by one thread at a time.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/attention.h"
#include "llm/model.h"

namespace duan {

struct ContextOptions {
    int n_ctx = 0;      // positions per sequence; 0 = min(model context, 4096)
    int n_threads = 0;  // 0 = all cores this process may use
    int n_seq = 1;      // independent sequences (each with its own KV cache)
    int n_ubatch = 512; // tokens evaluated per pass; longer batches are split
    DType cache_type_k = DType::F16;
    DType cache_type_v = DType::F16;
};

struct BatchToken {
    TokenId token = 0;
    int32_t pos = 0;   // position in its sequence; earlier positions must already be cached
    int32_t seq = 0;
    bool want_logits = false;
};

class Context {
public:
    Context(const Model& model, const ContextOptions& opts = {});

    // Evaluates the batch; returns n_vocab logits per token with want_logits, in batch order.
    // Throws duan::Error for an out-of-range token, position or sequence.
    const std::vector<float>& decode(const std::vector<BatchToken>& batch);

    // Forget a sequence's cached positions (all, or those from n on).
    void clear(int seq);
    void truncate(int seq, int n);
    void clear_all();

    const Model& model() const { return model_; }
    int n_ctx() const { return n_ctx_; }
    int n_seq() const { return n_seq_; }
    int n_threads() const { return pool_.size(); }
    ThreadPool& pool() { return pool_; }
    size_t kv_cache_bytes() const { return k_cache_.size() + v_cache_.size(); }
    // Positions cached for a sequence (one past the highest position evaluated).
    int seq_len(int seq) const { return seq_len_.at(seq); }

    // Optional observer of every matrix product: called with the weight and its input rows
    // x [M × W.n_cols] just before the product (used by `duan imatrix`; empty = off).
    using MatmulObserver = std::function<void(const kernels::Weight& W, const float* x, int64_t M)>;
    void set_matmul_observer(MatmulObserver f) { observer_ = std::move(f); }

private:
    void eval_ubatch(const BatchToken* tok, int64_t n);
    void attention_layer(int il, const BatchToken* tok, int64_t n);
    uint8_t* k_row(int il, int seq, int pos, int head);
    uint8_t* v_row(int il, int seq, int pos, int head);

    const Model& model_;
    const HParams& hp_;
    int n_ctx_, n_seq_, n_ubatch_;
    DType kt_, vt_;
    size_t k_row_bytes_, v_row_bytes_;  // one head's row of head_dim elements
    ThreadPool pool_;
    std::vector<uint8_t> k_cache_, v_cache_;  // [layer][seq][pos][kv_head] rows
    std::vector<int> seq_len_;

    // scratch, sized for n_ubatch tokens
    std::vector<float> x_, cur_, q_, k_, v_, attn_, ffn_g_, ffn_u_;
    std::vector<kernels::AttnScratch> attn_scratch_;  // one per thread
    std::vector<float> logits_;
    MatmulObserver observer_;
    void mm(const kernels::Weight& W, const float* x, int64_t M, float* y);
};

}  // namespace duan
