#include "llm/context.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>

#include "core/error.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"

namespace duan {

Context::Context(const Model& model, const ContextOptions& o)
    : model_(model),
      hp_(model.hparams()),
      n_ctx_(o.n_ctx > 0 ? o.n_ctx
                         : static_cast<int>(std::min<int64_t>(model.hparams().n_ctx_train, 4096))),
      n_seq_(std::max(1, o.n_seq)),
      n_ubatch_(std::max(1, o.n_ubatch)),
      kt_(o.cache_type_k),
      vt_(o.cache_type_v),
      pool_(o.n_threads > 0 ? o.n_threads : default_thread_count()) {
    for (DType t : {kt_, vt_}) {
        const auto& info = dtype_info(t);
        if (hp_.head_dim % info.block_size != 0 || !kernels::can_quantize(t))
            fail("KV cache type ", info.name, " cannot store heads of ", hp_.head_dim, " elements");
    }
    k_row_bytes_ = dtype_row_bytes(kt_, hp_.head_dim);
    v_row_bytes_ = dtype_row_bytes(vt_, hp_.head_dim);
    const size_t rows = static_cast<size_t>(hp_.n_layer) * n_seq_ * n_ctx_ * hp_.n_head_kv;
    k_cache_.assign(rows * k_row_bytes_, 0);
    v_cache_.assign(rows * v_row_bytes_, 0);
    seq_len_.assign(n_seq_, 0);
    attn_scratch_.resize(pool_.size());
}

uint8_t* Context::k_row(int il, int seq, int pos, int head) {
    const size_t r =
        ((static_cast<size_t>(il) * n_seq_ + seq) * n_ctx_ + pos) * hp_.n_head_kv + head;
    return k_cache_.data() + r * k_row_bytes_;
}
uint8_t* Context::v_row(int il, int seq, int pos, int head) {
    const size_t r =
        ((static_cast<size_t>(il) * n_seq_ + seq) * n_ctx_ + pos) * hp_.n_head_kv + head;
    return v_cache_.data() + r * v_row_bytes_;
}

void Context::clear(int seq) {
    if (seq < 0 || seq >= n_seq_) fail("sequence ", seq, " out of range [0, ", n_seq_, ")");
    seq_len_[seq] = 0;
}
void Context::truncate(int seq, int n) {
    if (seq < 0 || seq >= n_seq_) fail("sequence ", seq, " out of range [0, ", n_seq_, ")");
    seq_len_[seq] = std::clamp(n, 0, seq_len_[seq]);
}
void Context::clear_all() {
    std::fill(seq_len_.begin(), seq_len_.end(), 0);
}

const std::vector<float>& Context::decode(const std::vector<BatchToken>& batch) {
    // Validate everything first so a bad batch leaves the cache untouched.
    std::vector<int> len = seq_len_;
    size_t n_out = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
        const BatchToken& t = batch[i];
        if (t.token < 0 || t.token >= hp_.n_vocab)
            fail("batch token ", i, ": id ", t.token, " out of range [0, ", hp_.n_vocab, ")");
        if (t.seq < 0 || t.seq >= n_seq_)
            fail("batch token ", i, ": sequence ", t.seq, " out of range [0, ", n_seq_, ")");
        if (t.pos < 0 || t.pos >= n_ctx_)
            fail("batch token ", i, ": position ", t.pos, " outside the context of ", n_ctx_,
                 " tokens");
        if (t.pos > len[t.seq])
            fail("batch token ", i, ": position ", t.pos, " of sequence ", t.seq,
                 " skips positions (cached up to ", len[t.seq], ")");
        len[t.seq] = std::max(len[t.seq], t.pos + 1);
        n_out += t.want_logits;
    }
    logits_.resize(n_out * hp_.n_vocab);
    size_t out_row = 0;
    for (size_t b = 0; b < batch.size(); b += n_ubatch_) {
        const int64_t n = std::min<int64_t>(n_ubatch_, batch.size() - b);
        eval_ubatch(batch.data() + b, n);
        // logits for the tokens that want them: final norm, then the output matrix
        std::vector<int64_t> rows;
        for (int64_t i = 0; i < n; ++i)
            if (batch[b + i].want_logits) rows.push_back(i);
        if (rows.empty()) continue;
        std::vector<float> xs(rows.size() * hp_.n_embd);
        for (size_t r = 0; r < rows.size(); ++r)
            kernels::rms_norm(&x_[rows[r] * hp_.n_embd], model_.weights().output_norm,
                              &xs[r * hp_.n_embd], hp_.n_embd, hp_.rms_eps);
        mm(model_.weights().output, xs.data(), rows.size(), &logits_[out_row * hp_.n_vocab]);
        out_row += rows.size();
    }
    seq_len_ = len;
    return logits_;
}

void Context::mm(const kernels::Weight& W, const float* x, int64_t M, float* y) {
    if (observer_) observer_(W, x, M);
    kernels::matmul(W, x, M, y, pool_);
}

void Context::eval_ubatch(const BatchToken* tok, int64_t n) {
    const int64_t E = hp_.n_embd, QD = hp_.q_dim(), KVD = hp_.kv_dim(), F = hp_.n_ff;
    x_.resize(n * E);
    cur_.resize(n * std::max(E, QD));
    q_.resize(n * QD);
    k_.resize(n * KVD);
    v_.resize(n * KVD);
    attn_.resize(n * QD);
    ffn_g_.resize(n * F);
    ffn_u_.resize(n * F);

    const auto& W = model_.weights();
    for (int64_t i = 0; i < n; ++i)
        kernels::dequantize_row(W.tok_embd.type, W.tok_embd.row(tok[i].token), &x_[i * E], E);

    // Row-wise steps (norms, residual adds, SwiGLU) over the pool for a prefill ubatch: the same
    // per-row work whatever the split. A decode step (n small) stays on this thread.
    auto by_rows = [&](const std::function<void(int64_t, int64_t)>& fn) {
        if (n >= 4 && pool_.size() > 1)
            pool_.parallel_for(n, fn);
        else
            fn(0, n);
    };
    for (int il = 0; il < hp_.n_layer; ++il) {
        const LayerWeights& L = W.layers[il];
        // --- attention ---
        by_rows([&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i)
                kernels::rms_norm(&x_[i * E], L.attn_norm, &cur_[i * E], E, hp_.rms_eps);
        });
        mm(L.wq, cur_.data(), n, q_.data());
        mm(L.wk, cur_.data(), n, k_.data());
        mm(L.wv, cur_.data(), n, v_.data());
        attention_layer(il, tok, n);
        mm(L.wo, attn_.data(), n, cur_.data());
        // --- feed-forward (SwiGLU) ---
        by_rows([&](int64_t b, int64_t e) {
            for (int64_t i = b * E; i < e * E; ++i) x_[i] += cur_[i];
            for (int64_t i = b; i < e; ++i)
                kernels::rms_norm(&x_[i * E], L.ffn_norm, &cur_[i * E], E, hp_.rms_eps);
        });
        mm(L.w_gate, cur_.data(), n, ffn_g_.data());
        mm(L.w_up, cur_.data(), n, ffn_u_.data());
        by_rows([&](int64_t b, int64_t e) {
            kernels::swiglu(&ffn_g_[b * F], &ffn_u_[b * F], &ffn_g_[b * F], (e - b) * F);
        });
        mm(L.w_down, ffn_g_.data(), n, cur_.data());
        by_rows([&](int64_t b, int64_t e) {
            for (int64_t i = b * E; i < e * E; ++i) x_[i] += cur_[i];
        });
    }
}

// q_, k_, v_ hold this ubatch's projections [n × q_dim], [n × kv_dim]. Adds biases, applies the
// per-head norms and RoPE, stores K/V in the cache, then attends; result in attn_ [n × q_dim].
void Context::attention_layer(int il, const BatchToken* tok, int64_t n) {
    const LayerWeights& L = model_.weights().layers[il];
    const int64_t HD = hp_.head_dim, NH = hp_.n_head, NKV = hp_.n_head_kv;
    const int64_t QD = hp_.q_dim(), KVD = hp_.kv_dim();
    const bool neox = hp_.rope_mode == RopeMode::Neox;

    pool_.parallel_for(n, [&](int64_t b, int64_t e) {
        std::vector<float> c(hp_.n_rot / 2), s(hp_.n_rot / 2);
        for (int64_t i = b; i < e; ++i) {
            float* q = &q_[i * QD];
            float* k = &k_[i * KVD];
            float* v = &v_[i * KVD];
            if (L.bq)
                for (int64_t j = 0; j < QD; ++j) q[j] += L.bq[j];
            if (L.bk)
                for (int64_t j = 0; j < KVD; ++j) k[j] += L.bk[j];
            if (L.bv)
                for (int64_t j = 0; j < KVD; ++j) v[j] += L.bv[j];
            if (L.q_norm)
                for (int64_t h = 0; h < NH; ++h)
                    kernels::rms_norm(q + h * HD, L.q_norm, q + h * HD, HD, hp_.rms_eps);
            if (L.k_norm)
                for (int64_t h = 0; h < NKV; ++h)
                    kernels::rms_norm(k + h * HD, L.k_norm, k + h * HD, HD, hp_.rms_eps);
            kernels::rope_table(c.data(), s.data(), hp_.n_rot, tok[i].pos, hp_.rope_base,
                                hp_.rope_freq_scale, model_.weights().rope_freqs);
            for (int64_t h = 0; h < NH; ++h)
                kernels::rope_apply(q + h * HD, hp_.n_rot, c.data(), s.data(), neox);
            for (int64_t h = 0; h < NKV; ++h) {
                kernels::rope_apply(k + h * HD, hp_.n_rot, c.data(), s.data(), neox);
                kernels::quantize_activation_row(kt_, k + h * HD,
                                                 k_row(il, tok[i].seq, tok[i].pos, h), HD);
                kernels::quantize_activation_row(vt_, v + h * HD,
                                                 v_row(il, tok[i].seq, tok[i].pos, h), HD);
            }
        }
    });

    // One task per (token, head), each over its sequence's positions [0, pos], claimed one at a
    // time (a decode token: n_head tasks of equal size; a prefill ubatch: the last tokens attend
    // over the most positions, so they are handed out first and the small ones fill the gaps).
    const float scale = 1.0f / std::sqrt(static_cast<float>(HD));
    const int64_t group = NH / NKV;
    pool_.parallel_tasks(n * NH, [&](int64_t task, int ith) {
        kernels::AttnScratch& sc = attn_scratch_[ith];
        const int64_t i = n - 1 - task / NH, h = task % NH;
        const int64_t hk = h / group;
        kernels::KVView kv;
        kv.k = k_row(il, tok[i].seq, 0, static_cast<int>(hk));
        kv.v = v_row(il, tok[i].seq, 0, static_cast<int>(hk));
        kv.k_stride = NKV * k_row_bytes_;
        kv.v_stride = NKV * v_row_bytes_;
        kv.k_type = kt_;
        kv.v_type = vt_;
        kernels::attend(&q_[i * QD + h * HD], HD, kv, tok[i].pos + 1, scale,
                        &attn_[i * QD + h * HD], sc);
    });
}

}  // namespace duan
