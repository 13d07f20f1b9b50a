#include "plan/memory.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <thread>

#include "core/error.h"
#include "kernels/kernels.h"
#include "llm/hparams.h"
#include "llm/synth.h"

namespace duan::plan {

const char* layout_name(Layout l) {
    switch (l) {
        case Layout::Uniform:
            return "uniform";
        case Layout::LlamaCpp:
            return "llama.cpp";
        case Layout::GptqLike:
            return "gptq-like";
    }
    return "?";
}

uint64_t ModelShape::tensor_bytes() const {
    uint64_t n = 0;
    for (const auto& t : tensors) n += t.bytes;
    return n;
}

uint64_t ModelShape::n_params() const {
    uint64_t n = 0;
    for (const auto& t : tensors) n += static_cast<uint64_t>(t.cols) * t.rows;
    return n;
}

namespace {
uint64_t align_up(uint64_t n, uint64_t a) {
    return (n + a - 1) / a * a;
}

TensorRole role_of(const std::string& name, int64_t rows) {
    if (name == "token_embd.weight") return TensorRole::Embedding;
    if (name == "output.weight") return TensorRole::Output;
    return rows > 1 ? TensorRole::Matrix : TensorRole::Vector;
}
}  // namespace

ModelShape shape_from_preset(const Preset& p, const std::string& type, Layout layout) {
    ModelShape m;
    m.name = p.name;
    m.type = type;
    if (layout != Layout::LlamaCpp) m.type += std::string("/") + layout_name(layout);
    m.n_vocab = p.n_vocab;
    m.n_embd = p.n_embd;
    m.n_layer = p.n_layer;
    m.n_head = p.n_head;
    m.n_head_kv = p.n_head_kv;
    m.head_dim = p.head_dim;
    m.n_ff = p.n_ff;
    m.n_ctx_train = p.n_ctx_train;
    m.tied_output = p.tied_output;
    // The tensor table duan synth writes (llama.cpp's quantizer rules, or --pure for Uniform).
    for (const auto& t : synth_tensor_plan(p, type, layout != Layout::LlamaCpp)) {
        TensorShape s;
        s.name = t.name;
        s.type = t.type;
        s.cols = t.ne.empty() ? 0 : t.ne[0];
        s.rows = t.ne.size() > 1 ? t.ne[1] : 1;
        s.role = role_of(t.name, s.rows);
        s.bytes = t.n_bytes;
        // GPTQ checkpoints keep the embeddings and the LM head in 16-bit.
        if (layout == Layout::GptqLike &&
            (s.role == TensorRole::Embedding || s.role == TensorRole::Output)) {
            s.type = DType::F16;
            s.bytes = dtype_row_bytes(DType::F16, s.cols) * static_cast<uint64_t>(s.rows);
        }
        m.tensors.push_back(std::move(s));
    }
    // Header and metadata: per tensor ~ name + dims + type + offset; the vocabulary as GGUF
    // strings (8-byte length + ~7 bytes of text for BPE vocabularies), token types (i32), and for
    // BPE families one merge string per token (~12 bytes + length).
    const bool bpe = std::string(p.family) != "llama-spm";
    uint64_t meta = 4096;  // magic, counts, the scalar keys, chat template
    for (const auto& t : m.tensors) meta += 8 + t.name.size() + 4 + 8 * 2 + 4 + 8;
    meta += static_cast<uint64_t>(p.n_vocab) * (8 + 7 + 4 + (bpe ? 8 + 12 : 4));
    m.metadata_bytes = meta;
    uint64_t data = 0;
    for (const auto& t : m.tensors) data = align_up(data, 32) + t.bytes;
    m.file_bytes = align_up(meta, 32) + data;
    return m;
}

ModelShape shape_from_gguf(const gguf::File& f) {
    const HParams hp = read_llama_family_hparams(f);
    ModelShape m;
    m.name = f.path();
    m.from_file = true;
    m.n_embd = hp.n_embd;
    m.n_layer = hp.n_layer;
    m.n_head = hp.n_head;
    m.n_head_kv = hp.n_head_kv;
    m.head_dim = hp.head_dim;
    m.n_ff = hp.n_ff;
    m.n_ctx_train = hp.n_ctx_train;
    m.file_bytes = f.file_size();
    m.metadata_bytes = f.data_offset();
    std::map<std::string, uint64_t> by_type;  // matrix bytes per type: the file's "type"
    bool has_output = false;
    for (const auto& t : f.tensors()) {
        TensorShape s;
        s.name = t.name;
        s.type = t.type;
        s.cols = t.ne.empty() ? 0 : t.ne[0];
        s.rows = t.ne.size() > 1 ? t.n_rows() : 1;
        s.bytes = t.n_bytes;
        if (t.name == "token_embd.weight") {
            s.role = TensorRole::Embedding;
            m.n_vocab = s.rows;
        } else if (t.name == "output.weight") {
            s.role = TensorRole::Output;
            has_output = true;
        } else {
            s.role = t.ne.size() >= 2 && s.rows > 1 ? TensorRole::Matrix : TensorRole::Vector;
        }
        if (s.role == TensorRole::Matrix) by_type[dtype_name(t.type)] += t.n_bytes;
        m.tensors.push_back(std::move(s));
    }
    if (m.n_vocab == 0) fail(f.path(), ": missing tensor 'token_embd.weight'");
    m.tied_output = !has_output;
    uint64_t best = 0;
    for (const auto& [name, bytes] : by_type)
        if (bytes > best) best = bytes, m.type = name;
    return m;
}

uint64_t kv_cache_bytes(const ModelShape& m, const RunShape& r) {
    const uint64_t rows = static_cast<uint64_t>(m.n_layer) * std::max(1, r.n_seq) *
                          static_cast<uint64_t>(r.n_ctx) * m.n_head_kv;
    return rows * (dtype_row_bytes(r.cache_k, m.head_dim) + dtype_row_bytes(r.cache_v, m.head_dim));
}

namespace {
int threads_of(const RunShape& r) {
    if (r.n_threads > 0) return r.n_threads;
    return std::max(1u, std::thread::hardware_concurrency());
}

// Largest quantized activation copy matmul makes: n rows of the widest input (n_embd, q_dim or
// n_ff) in the vec_dot type of the widest-typed matrix.
uint64_t act_copy_bytes(const ModelShape& m, int64_t n) {
    uint64_t best = 0;
    for (const auto& t : m.tensors) {
        if (t.role == TensorRole::Vector || t.role == TensorRole::Embedding) continue;
        const DType at = kernels::vec_dot_type(t.type);
        if (at == DType::F32) continue;  // f32 weights use the activations in place
        const auto& info = dtype_info(at);
        if (t.cols % info.block_size) continue;
        best = std::max<uint64_t>(best, dtype_row_bytes(at, t.cols) * static_cast<uint64_t>(n));
    }
    return best;
}
}  // namespace

MemoryPlan plan_memory(const ModelShape& m, const RunShape& r) {
    MemoryPlan p;
    char buf[256];

    p.weights = m.file_bytes;
    std::snprintf(buf, sizeof buf, "%s of tensors (%s) + %s header/metadata, mmapped",
                  gb(m.tensor_bytes()).c_str(), m.type.c_str(),
                  gb(m.file_bytes - std::min(m.file_bytes, m.tensor_bytes())).c_str());
    p.lines.push_back({"weights", p.weights, buf});

    p.kv_cache = kv_cache_bytes(m, r);
    std::snprintf(buf, sizeof buf,
                  "%lld layers x %d seq x %d ctx x %lld kv heads x %lld dims, K %s V %s",
                  static_cast<long long>(m.n_layer), std::max(1, r.n_seq), r.n_ctx,
                  static_cast<long long>(m.n_head_kv), static_cast<long long>(m.head_dim),
                  dtype_name(r.cache_k), dtype_name(r.cache_v));
    p.lines.push_back({"kv_cache", p.kv_cache, buf});

    // Context scratch for a full ubatch (see llm/context.cpp eval_ubatch): x, cur, q, k, v, attn,
    // ffn_g, ffn_u as f32; the matmul's activation copy; per-thread attention scores over n_ctx;
    // one row of logits plus its normed input.
    const int64_t n = std::max(1, std::min(r.n_ubatch, r.n_ctx));
    const int64_t E = m.n_embd, QD = m.q_dim(), KVD = m.kv_dim(), F = m.n_ff;
    const uint64_t floats =
        static_cast<uint64_t>(n) * (E + std::max(E, QD) + 2 * QD + 2 * KVD + 2 * F);
    const uint64_t act = act_copy_bytes(m, n);
    const uint64_t attn = static_cast<uint64_t>(threads_of(r)) * (r.n_ctx + 2 * m.head_dim) * 4 * 2;
    const uint64_t logits = static_cast<uint64_t>(m.n_vocab + E) * 4;
    p.compute = floats * 4 + act + attn + logits;
    std::snprintf(buf, sizeof buf,
                  "ubatch %lld: activations %s + matmul copy %s + attention %s + logits %s",
                  static_cast<long long>(n), gb(floats * 4).c_str(), gb(act).c_str(),
                  gb(attn).c_str(), gb(logits).c_str());
    p.lines.push_back({"compute", p.compute, buf});

    // The parsed metadata keeps each vocabulary string and merge as a std::string (32 bytes + the
    // text when longer than 15), token types as double+int64; the tokenizer then copies the
    // vocabulary into its own table with a hash index and the merge ranks.
    p.tokenizer = m.metadata_bytes + static_cast<uint64_t>(m.n_vocab) * kTokenizerBytesPerToken;
    std::snprintf(buf, sizeof buf, "%lld tokens: metadata copy %s + %d B/token of tables",
                  static_cast<long long>(m.n_vocab), gb(m.metadata_bytes).c_str(),
                  static_cast<int>(kTokenizerBytesPerToken));
    p.lines.push_back({"tokenizer", p.tokenizer, buf});

    p.runtime = kRuntimeBytes + static_cast<uint64_t>(threads_of(r)) * kThreadBytes;
    std::snprintf(buf, sizeof buf, "process (code, libc, allocator) %s + %d threads",
                  gb(kRuntimeBytes).c_str(), threads_of(r));
    p.lines.push_back({"runtime", p.runtime, buf});
    return p;
}

std::string gb(uint64_t bytes) {
    char s[32];
    const double b = static_cast<double>(bytes);
    if (b >= 1e9)
        std::snprintf(s, sizeof s, "%.2f GB", b / 1e9);
    else if (b >= 1e6)
        std::snprintf(s, sizeof s, "%.1f MB", b / 1e6);
    else if (b >= 1e3)
        std::snprintf(s, sizeof s, "%.1f kB", b / 1e3);
    else
        std::snprintf(s, sizeof s, "%.0f B", b);
    return s;
}

std::string gib(uint64_t bytes) {
    char s[32];
    std::snprintf(s, sizeof s, "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024 * 1024));
    return s;
}

}  // namespace duan::plan
