#include "llm/synth.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>

#include "core/error.h"
#include "core/random.h"
#include "core/shape.h"
#include "core/thread_pool.h"
#include "format/gguf_writer.h"
#include "kernels/kernels.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace duan {

namespace {

// llama_ftype values (llama.h) and the base type each one quantizes matrices to.
struct FileType {
    const char* name;
    uint32_t ftype;
    DType base;
};

constexpr uint32_t kQ2K = 10, kQ3KS = 11, kQ3KM = 12, kQ3KL = 13, kQ4KS = 14, kQ4KM = 15,
                   kQ5KS = 16, kQ5KM = 17;

const FileType kFileTypes[] = {
    {"f32", 0, DType::F32},
    {"f16", 1, DType::F16},
    {"bf16", 32, DType::BF16},
    {"q4_0", 2, DType::Q4_0},
    {"q4_1", 3, DType::Q4_1},
    {"q8_0", 7, DType::Q8_0},
    {"q5_0", 8, DType::Q5_0},
    {"q5_1", 9, DType::Q5_1},
    {"q2_k", kQ2K, DType::Q2_K},
    {"q3_k_s", kQ3KS, DType::Q3_K},
    {"q3_k_m", kQ3KM, DType::Q3_K},
    {"q3_k_l", kQ3KL, DType::Q3_K},
    {"q4_k_s", kQ4KS, DType::Q4_K},
    {"q4_k_m", kQ4KM, DType::Q4_K},
    {"q5_k_s", kQ5KS, DType::Q5_K},
    {"q5_k_m", kQ5KM, DType::Q5_K},
    {"q6_k", 18, DType::Q6_K},
    // llama-quantize's aliases
    {"q3_k", kQ3KM, DType::Q3_K},
    {"q4_k", kQ4KM, DType::Q4_K},
    {"q5_k", kQ5KM, DType::Q5_K},
};

const FileType& find_file_type(const std::string& name) {
    std::string n = name;
    for (auto& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const auto& f : kFileTypes)
        if (n == f.name) return f;
    std::string all;
    for (const auto& s : synth_type_names()) all += (all.empty() ? "" : " ") + s;
    fail("unknown weight type '", name, "' (known: ", all, ")");
}

bool is_k_quant(DType t) {
    return t == DType::Q2_K || t == DType::Q3_K || t == DType::Q4_K || t == DType::Q5_K ||
           t == DType::Q6_K;
}

// llama.cpp's use_more_bits: the first and last eighth of the layers and every third in between.
bool use_more_bits(int il, int n) {
    return il < n / 8 || il >= 7 * n / 8 || (il - n / 8) % 3 == 2;
}

enum class Kind { TokenEmbd, Output, AttnQ, AttnK, AttnV, AttnOut, FfnGate, FfnUp, FfnDown };

// The type llama.cpp's quantizer gives a matrix of row length nx (non-pure quantized file types).
DType mixed_type(const Preset& p, const FileType& ft, Kind kind, int il, int64_t nx) {
    DType t = ft.base;
    const uint32_t f = ft.ftype;
    const int n = static_cast<int>(p.n_layer);
    const int64_t gqa = p.n_head / p.n_head_kv;
    const bool is_70b = n == 80;  // LLM_TYPE_70B for the llama/qwen2 families
    if (kind == Kind::Output || (kind == Kind::TokenEmbd && p.tied_output)) {
        if (nx % dtype_info(t).block_size != 0)
            t = DType::Q8_0;
        else if (t != DType::Q8_0)
            t = DType::Q6_K;
    } else if (kind == Kind::AttnV) {
        if (f == kQ2K)
            t = gqa >= 4 ? DType::Q4_K : DType::Q3_K;
        else if (f == kQ3KM)
            t = il < 2 ? DType::Q5_K : DType::Q4_K;
        else if (f == kQ3KL)
            t = DType::Q5_K;
        else if ((f == kQ4KM || f == kQ5KM) && use_more_bits(il, n))
            t = DType::Q6_K;
        else if (f == kQ4KS && il < 4)
            t = DType::Q5_K;
        if (is_70b && (t == DType::Q3_K || t == DType::Q4_K)) t = DType::Q5_K;
    } else if (kind == Kind::FfnDown) {
        if (f == kQ2K)
            t = DType::Q3_K;
        else if (f == kQ3KM)
            t = il < n / 16 ? DType::Q5_K : DType::Q4_K;
        else if (f == kQ3KL)
            t = DType::Q5_K;
        else if ((f == kQ4KM || f == kQ5KM) && use_more_bits(il, n))
            t = DType::Q6_K;
        else if (f == kQ4KS && il < n / 8)
            t = DType::Q5_K;
    } else if (kind == Kind::AttnOut) {
        if (f == kQ2K)
            t = DType::Q3_K;
        else if (f == kQ3KM)
            t = DType::Q4_K;
        else if (f == kQ3KL)
            t = DType::Q5_K;
    }
    return t;
}

// A type whose block divides the row length (llama.cpp's fallback for incompatible K-quants).
DType fit_row(DType t, int64_t nx) {
    if (nx % dtype_info(t).block_size == 0) return t;
    if (is_k_quant(t)) {
        switch (t) {
            case DType::Q4_K:
                t = DType::Q5_0;
                break;
            case DType::Q5_K:
                t = DType::Q5_1;
                break;
            case DType::Q6_K:
                t = DType::Q8_0;
                break;
            default:
                t = DType::Q4_0;
                break;  // llama.cpp: IQ4_NL (same size; duan lacks it)
        }
    }
    return nx % dtype_info(t).block_size == 0 ? t : DType::F16;
}

SynthTensor make_tensor(std::string name, DType t, std::vector<int64_t> ne) {
    SynthTensor s{std::move(name), t, std::move(ne), 0};
    std::string why;
    auto bytes = gguf::tensor_n_bytes(t, s.ne, &why);
    if (!bytes) fail("synth: tensor ", s.name, ": ", why);
    s.n_bytes = *bytes;
    return s;
}

// ---- tokenizer -------------------------------------------------------------------------------

constexpr int32_t kTokNormal = static_cast<int32_t>(TokenType::NORMAL);
constexpr int32_t kTokControl = static_cast<int32_t>(TokenType::CONTROL);
constexpr int32_t kTokUnused = static_cast<int32_t>(TokenType::UNUSED);

// Copies tokenizer.* from a vocabulary GGUF; pads the per-token arrays to n_vocab with "[PAD{i}]"
// tokens typed UNUSED, as the converter does for Qwen's padded embedding matrices.
void copy_vocab(const Preset& p, const std::string& path, gguf::Metadata& meta) {
    auto f = gguf::File::open(path);
    const auto& src = f->meta();
    const auto* toks = src.get_strings("tokenizer.ggml.tokens");
    if (!toks) fail(path, ": not a vocabulary: no tokenizer.ggml.tokens");
    const int64_t n_have = static_cast<int64_t>(toks->size());
    if (n_have > p.n_vocab)
        fail(path, ": the vocabulary has ", n_have, " tokens, more than preset ", p.name,
             "'s n_vocab ", p.n_vocab);
    for (const auto& [key, v] : src.items()) {
        if (key.rfind("tokenizer.", 0) != 0) continue;
        if (key == "tokenizer.ggml.tokens") {
            std::vector<std::string> t = *toks;
            for (int64_t i = n_have; i < p.n_vocab; ++i)
                t.push_back("[PAD" + std::to_string(i) + "]");
            meta.set(key, gguf::Value::from_strings(std::move(t)));
        } else if (key == "tokenizer.ggml.token_type") {
            auto t = src.get_i32s(key).value_or(std::vector<int32_t>{});
            t.resize(static_cast<size_t>(n_have), kTokNormal);
            t.resize(static_cast<size_t>(p.n_vocab), kTokUnused);
            meta.set(key, gguf::Value::from_i32s(t));
        } else if (key == "tokenizer.ggml.scores") {
            auto s = src.get_f32s(key).value_or(std::vector<float>{});
            s.resize(static_cast<size_t>(p.n_vocab), 0.0f);
            meta.set(key, gguf::Value::from_f32s(s));
        } else {
            meta.set(key, v);
        }
    }
    if (!meta.has("tokenizer.ggml.token_type") && n_have < p.n_vocab) {
        std::vector<int32_t> t(static_cast<size_t>(n_have), kTokNormal);
        t.resize(static_cast<size_t>(p.n_vocab), kTokUnused);
        meta.set("tokenizer.ggml.token_type", gguf::Value::from_i32s(t));
    }
}

// A small byte-level BPE vocabulary of exactly n_vocab tokens: the 256 byte symbols, merges of
// common letter pairs (with and without a leading space), padding, and three control tokens at
// the end (Qwen's layout: <|endoftext|> is BOS/EOS).
void generate_vocab(const Preset& p, gguf::Metadata& meta) {
    const int64_t n_special = 3;
    if (p.n_vocab < 256 + n_special)
        fail("synth: n_vocab ", p.n_vocab,
             " is too small for a byte-level vocabulary (>= ", 256 + n_special, ")");
    std::vector<std::string> tokens;
    std::vector<int32_t> types;
    std::vector<std::string> merges;
    tokens.reserve(static_cast<size_t>(p.n_vocab));
    auto sym = [](uint8_t b) {
        std::string s;
        unicode::append_utf8(s, unicode::byte_to_cp(b));
        return s;
    };
    for (int b = 0; b < 256; ++b) {
        tokens.push_back(sym(static_cast<uint8_t>(b)));
        types.push_back(kTokNormal);
    }
    const int64_t n_body = p.n_vocab - n_special;
    const std::string letters = "etaoinsrhldcumfpgwybvkxjqz";
    const std::string firsts = " " + letters;
    for (char a : firsts) {
        for (char b : letters) {
            if (static_cast<int64_t>(tokens.size()) >= n_body) break;
            const std::string l = sym(static_cast<uint8_t>(a)), r = sym(static_cast<uint8_t>(b));
            merges.push_back(l + " " + r);
            tokens.push_back(l + r);
            types.push_back(kTokNormal);
        }
    }
    while (static_cast<int64_t>(tokens.size()) < n_body) {
        tokens.push_back("[PAD" + std::to_string(tokens.size()) + "]");
        types.push_back(kTokUnused);
    }
    const int64_t eos = n_body;
    for (const char* s : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}) {
        tokens.push_back(s);
        types.push_back(kTokControl);
    }
    const std::string pre = std::string(p.family) == "llama-bpe" ? "llama-bpe"
                            : std::string(p.family) == "qwen2"   ? "qwen2"
                                                                 : "default";
    meta.set("tokenizer.ggml.model", gguf::Value::from_string("gpt2"));
    meta.set("tokenizer.ggml.pre", gguf::Value::from_string(pre));
    meta.set("tokenizer.ggml.tokens", gguf::Value::from_strings(std::move(tokens)));
    meta.set("tokenizer.ggml.token_type", gguf::Value::from_i32s(types));
    meta.set("tokenizer.ggml.merges", gguf::Value::from_strings(std::move(merges)));
    meta.set("tokenizer.ggml.bos_token_id", gguf::Value::from_u32(static_cast<uint32_t>(eos)));
    meta.set("tokenizer.ggml.eos_token_id", gguf::Value::from_u32(static_cast<uint32_t>(eos + 2)));
    meta.set("tokenizer.ggml.padding_token_id", gguf::Value::from_u32(static_cast<uint32_t>(eos)));
    meta.set("tokenizer.ggml.add_bos_token", gguf::Value::from_bool(false));
}

}  // namespace

const std::vector<std::string>& synth_type_names() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> v;
        for (const auto& f : kFileTypes) v.push_back(f.name);
        return v;
    }();
    return names;
}

uint32_t synth_file_type(const std::string& type) {
    return find_file_type(type).ftype;
}

std::vector<SynthTensor> synth_tensor_plan(const Preset& p, const std::string& type, bool pure) {
    const FileType& ft = find_file_type(type);
    const bool quantized = ft.base != DType::F32 && ft.base != DType::F16 && ft.base != DType::BF16;
    if (p.n_embd <= 0 || p.n_layer <= 0 || p.n_head <= 0 || p.n_head_kv <= 0 ||
        p.n_head % p.n_head_kv != 0 || p.head_dim <= 0 || p.n_ff <= 0 || p.n_vocab <= 0)
        fail("synth: preset ", p.name, " has an invalid shape");
    // Matrix [rows × cols] (GGUF ne = {cols, rows}); the type depends on the recipe.
    auto matrix = [&](const std::string& name, Kind kind, int il, int64_t rows, int64_t cols) {
        DType t = ft.base;
        if (quantized && !pure) t = mixed_type(p, ft, kind, il, cols);
        return make_tensor(name, fit_row(t, cols), {cols, rows});
    };
    auto vec = [&](const std::string& name, int64_t n) {
        return make_tensor(name, DType::F32, {n});
    };
    std::vector<SynthTensor> out;
    out.push_back(matrix("token_embd.weight", Kind::TokenEmbd, 0, p.n_vocab, p.n_embd));
    for (int il = 0; il < p.n_layer; ++il) {
        const std::string b = "blk." + std::to_string(il) + ".";
        out.push_back(vec(b + "attn_norm.weight", p.n_embd));
        out.push_back(matrix(b + "attn_q.weight", Kind::AttnQ, il, p.q_dim(), p.n_embd));
        if (p.qkv_bias) out.push_back(vec(b + "attn_q.bias", p.q_dim()));
        out.push_back(matrix(b + "attn_k.weight", Kind::AttnK, il, p.kv_dim(), p.n_embd));
        if (p.qkv_bias) out.push_back(vec(b + "attn_k.bias", p.kv_dim()));
        out.push_back(matrix(b + "attn_v.weight", Kind::AttnV, il, p.kv_dim(), p.n_embd));
        if (p.qkv_bias) out.push_back(vec(b + "attn_v.bias", p.kv_dim()));
        if (p.qk_norm) {
            out.push_back(vec(b + "attn_q_norm.weight", p.head_dim));
            out.push_back(vec(b + "attn_k_norm.weight", p.head_dim));
        }
        out.push_back(matrix(b + "attn_output.weight", Kind::AttnOut, il, p.n_embd, p.q_dim()));
        out.push_back(vec(b + "ffn_norm.weight", p.n_embd));
        out.push_back(matrix(b + "ffn_gate.weight", Kind::FfnGate, il, p.n_ff, p.n_embd));
        out.push_back(matrix(b + "ffn_up.weight", Kind::FfnUp, il, p.n_ff, p.n_embd));
        out.push_back(matrix(b + "ffn_down.weight", Kind::FfnDown, il, p.n_embd, p.n_ff));
    }
    out.push_back(vec("output_norm.weight", p.n_embd));
    if (!p.tied_output)
        out.push_back(matrix("output.weight", Kind::Output, 0, p.n_vocab, p.n_embd));
    return out;
}

void synth_metadata(const Preset& p, const SynthOptions& o, gguf::Metadata& meta) {
    const FileType& ft = find_file_type(o.type);
    const std::string a = std::string(p.arch) + ".";
    auto u32 = [](int64_t v) { return gguf::Value::from_u32(static_cast<uint32_t>(v)); };
    meta.set("general.architecture", gguf::Value::from_string(p.arch));
    meta.set("general.name", gguf::Value::from_string(std::string("synthetic ") + p.name));
    meta.set(
        "general.description",
        gguf::Value::from_string(std::string("duan synth: random weights, shape of ") + p.note));
    meta.set(a + "vocab_size", u32(p.n_vocab));
    meta.set(a + "context_length", u32(p.n_ctx_train));
    meta.set(a + "embedding_length", u32(p.n_embd));
    meta.set(a + "block_count", u32(p.n_layer));
    meta.set(a + "feed_forward_length", u32(p.n_ff));
    meta.set(a + "attention.head_count", u32(p.n_head));
    meta.set(a + "attention.head_count_kv", u32(p.n_head_kv));
    if (p.head_dim != p.n_embd / p.n_head || std::string(p.arch) == "qwen3") {
        meta.set(a + "attention.key_length", u32(p.head_dim));
        meta.set(a + "attention.value_length", u32(p.head_dim));
    }
    if (std::string(p.arch) == "llama") meta.set(a + "rope.dimension_count", u32(p.head_dim));
    meta.set(a + "rope.freq_base", gguf::Value::from_f32(p.rope_base));
    meta.set(a + "attention.layer_norm_rms_epsilon", gguf::Value::from_f32(p.rms_eps));
    meta.set("general.file_type", gguf::Value::from_u32(ft.ftype));
    if (ft.ftype != 0 && ft.ftype != 1 && ft.ftype != 32)
        meta.set("general.quantization_version", gguf::Value::from_u32(2));
    if (!o.vocab_path.empty())
        copy_vocab(p, o.vocab_path, meta);
    else
        generate_vocab(p, meta);
}

SynthStats synthesize(const Preset& p, const std::string& path, const SynthOptions& o) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto plan = synth_tensor_plan(p, o.type, o.pure);
    gguf::Writer w(path);
    synth_metadata(p, o, w.meta());
    SynthStats st;
    for (const auto& t : plan) {
        w.add_tensor(t.name, t.type, t.ne);
        st.n_params += shape_numel(t.ne);
        st.data_bytes += t.n_bytes;
    }
    st.n_tensors = static_cast<int>(plan.size());
    w.begin_data();

    ThreadPool pool(std::max(1, o.n_threads));
    std::vector<uint8_t> buf;
    std::vector<std::vector<float>> rows(static_cast<size_t>(pool.size()));
    for (size_t ti = 0; ti < plan.size(); ++ti) {
        const SynthTensor& t = plan[ti];
        const int64_t n_cols = t.ne[0];
        const int64_t n_rows = t.ne.size() > 1 ? t.ne[1] : 1;
        const size_t row_bytes = dtype_row_bytes(t.type, n_cols);
        buf.resize(static_cast<size_t>(t.n_bytes));
        const bool is_norm = t.name.find("norm.weight") != std::string::npos;
        const uint64_t tseed = splitmix64(o.seed ^ splitmix64(ti + 1));
        pool.run([&](int ith, int nth) {
            auto& row = rows[static_cast<size_t>(ith)];
            row.resize(static_cast<size_t>(n_cols));
            const int64_t per = (n_rows + nth - 1) / nth;
            const int64_t r0 = std::min(n_rows, per * ith), r1 = std::min(n_rows, r0 + per);
            for (int64_t r = r0; r < r1; ++r) {
                if (is_norm)
                    std::fill(row.begin(), row.end(), 1.0f);
                else
                    fill_normal(row.data(), n_cols, splitmix64(tseed + static_cast<uint64_t>(r)),
                                o.stddev);
                kernels::quantize_row(t.type, row.data(), buf.data() + r * row_bytes, n_cols);
            }
        });
        w.write_tensor_data(t.name, buf.data(), buf.size());
    }
    w.finish();
    st.file_bytes = std::filesystem::file_size(path);
    st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return st;
}

}  // namespace duan
