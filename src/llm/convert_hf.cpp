#include "llm/convert_hf.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <numbers>
#include <optional>
#include <set>
#include <sstream>

#include "core/error.h"
#include "format/gguf_writer.h"
#include "format/safetensors.h"
#include "kernels/kernels.h"
#include "tokenizer/tokenizer.h"

namespace duan {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr int64_t kMaxDim = int64_t(1) << 24;  // sanity bound for any config dimension

json read_json(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    if (!f) fail(p.string(), ": cannot open");
    std::stringstream ss;
    ss << f.rdbuf();
    json j;
    try {
        j = json::parse(ss.str());
    } catch (const json::exception& e) {
        fail(p.string(), ": invalid JSON: ", e.what());
    }
    if (!j.is_object()) fail(p.string(), ": the top level must be a JSON object");
    return j;
}

struct Config {
    std::string path;  // for messages
    std::string arch;  // llama, qwen2, qwen3
    std::string name;
    int64_t n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, n_ff = 0, n_vocab = 0;
    int64_t head_dim = 0, n_ctx = 0;
    double eps = 1e-6, rope_theta = 10000;
    bool tied = false;
    json rope_scaling;
    std::optional<int64_t> bos_id, eos_id;
};

int64_t get_int(const json& j, const Config& c, const char* key, std::optional<int64_t> dflt) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
        if (dflt) return *dflt;
        fail(c.path, ": missing required key '", key, "'");
    }
    if (!it->is_number_integer())
        fail(c.path, ": key '", key, "' must be an integer, got ", it->dump());
    const int64_t v = it->get<int64_t>();
    if (v <= 0 || v > kMaxDim) fail(c.path, ": key '", key, "' = ", v, " is out of range");
    return v;
}

double get_num(const json& j, const Config& c, const char* key, double dflt) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return dflt;
    if (!it->is_number()) fail(c.path, ": key '", key, "' must be a number, got ", it->dump());
    return it->get<double>();
}

std::optional<int64_t> token_id_key(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end()) return std::nullopt;
    if (it->is_number_integer()) return it->get<int64_t>();
    if (it->is_array() && !it->empty() && (*it)[0].is_number_integer())
        return (*it)[0].get<int64_t>();
    return std::nullopt;
}

Config parse_config(const fs::path& dir) {
    Config c;
    c.path = (dir / "config.json").string();
    const json j = read_json(dir / "config.json");
    std::string hf_arch;
    if (auto a = j.find("architectures");
        a != j.end() && a->is_array() && !a->empty() && (*a)[0].is_string())
        hf_arch = (*a)[0].get<std::string>();
    else if (auto m = j.find("model_type"); m != j.end() && m->is_string())
        hf_arch = m->get<std::string>();
    else
        fail(c.path, ": missing required key 'architectures' (or 'model_type')");
    static const std::map<std::string, std::string> kArch = {
        {"LlamaForCausalLM", "llama"},
        {"MistralForCausalLM", "llama"},
        {"Qwen2ForCausalLM", "qwen2"},
        {"Qwen3ForCausalLM", "qwen3"},
        {"llama", "llama"},
        {"qwen2", "qwen2"},
        {"qwen3", "qwen3"},
    };
    auto it = kArch.find(hf_arch);
    if (it == kArch.end())
        fail(c.path, ": architecture '", hf_arch,
             "' is not supported (supported: LlamaForCausalLM, Qwen2ForCausalLM, "
             "Qwen3ForCausalLM)");
    c.arch = it->second;
    c.n_embd = get_int(j, c, "hidden_size", std::nullopt);
    c.n_layer = get_int(j, c, "num_hidden_layers", std::nullopt);
    c.n_head = get_int(j, c, "num_attention_heads", std::nullopt);
    c.n_ff = get_int(j, c, "intermediate_size", std::nullopt);
    c.n_vocab = get_int(j, c, "vocab_size", std::nullopt);
    c.n_head_kv = get_int(j, c, "num_key_value_heads", c.n_head);
    c.head_dim = get_int(j, c, "head_dim", c.n_embd / c.n_head);
    c.n_ctx = get_int(j, c, "max_position_embeddings", 4096);
    c.eps = get_num(j, c, "rms_norm_eps", 1e-6);
    c.rope_theta = get_num(j, c, "rope_theta", 10000.0);
    if (c.n_head % c.n_head_kv != 0)
        fail(c.path, ": num_key_value_heads (", c.n_head_kv, ") must divide num_attention_heads (",
             c.n_head, ")");
    if (c.head_dim % 2 != 0) fail(c.path, ": head_dim ", c.head_dim, " must be even");
    if (auto t = j.find("tie_word_embeddings"); t != j.end() && t->is_boolean()) c.tied = *t;
    if (auto r = j.find("rope_scaling"); r != j.end() && r->is_object()) c.rope_scaling = *r;
    c.bos_id = token_id_key(j, "bos_token_id");
    c.eos_id = token_id_key(j, "eos_token_id");
    if (auto n = j.find("_name_or_path"); n != j.end() && n->is_string() && !n->empty())
        c.name = fs::path(n->get<std::string>()).filename().string();
    if (c.name.empty()) c.name = fs::absolute(dir).lexically_normal().filename().string();
    if (c.name.empty())
        c.name = fs::absolute(dir).lexically_normal().parent_path().filename().string();
    return c;
}

// ---- tokenizer ----------------------------------------------------------------------------------

struct Vocab {
    std::vector<std::string> tokens;
    std::vector<int32_t> types;
    std::vector<std::string> merges;
    std::string pre;
    std::optional<int64_t> bos, eos, pad, unk;
    bool add_bos = false;
    std::optional<bool> add_eos;
    std::string chat_template;
};

std::string token_content(const json& v) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object()) {
        auto c = v.find("content");
        if (c != v.end() && c->is_string()) return c->get<std::string>();
    }
    return "";
}

Vocab build_vocab(const fs::path& dir, const Config& cfg) {
    Vocab v;
    const fs::path tp = dir / "tokenizer.json";
    const std::string where = tp.string();
    const json tj = read_json(tp);
    const json& model = tj.contains("model") ? tj["model"] : json();
    if (!model.is_object()) fail(where, ": missing 'model'");
    const std::string type = model.value("type", "");
    if (type != "BPE")
        fail(where, ": model.type '", type,
             "' is not supported (only byte-level BPE; SentencePiece tokenizer.model is not "
             "supported)");
    if (model.value("byte_fallback", false))
        fail(where,
             ": model.byte_fallback is set: a SentencePiece-style vocabulary, which needs "
             "tokenizer.model (not supported)");
    const json& vocab = model.contains("vocab") ? model["vocab"] : json();
    if (!vocab.is_object()) fail(where, ": model.vocab must be an object {token: id}");

    const int64_t n = cfg.n_vocab;
    v.tokens.assign(n, "");
    v.types.assign(n, static_cast<int32_t>(TokenType::UNUSED));
    std::vector<bool> have(n, false);
    auto put = [&](const std::string& tok, const json& idj, TokenType tt, const char* field) {
        if (!idj.is_number_integer())
            fail(where, ": ", field, ": id of '", tok, "' is not an integer");
        const int64_t id = idj.get<int64_t>();
        if (id < 0 || id >= n)
            fail(where, ": ", field, ": token '", tok, "' has id ", id, ", outside vocab_size ", n,
                 " from config.json");
        v.tokens[id] = tok;
        v.types[id] = static_cast<int32_t>(tt);
        have[id] = true;
    };
    for (auto it = vocab.begin(); it != vocab.end(); ++it)
        put(it.key(), it.value(), TokenType::NORMAL, "model.vocab");
    if (auto at = tj.find("added_tokens"); at != tj.end()) {
        if (!at->is_array()) fail(where, ": added_tokens must be an array");
        for (const auto& a : *at) {
            if (!a.is_object() || !a.contains("content") || !a["content"].is_string() ||
                !a.contains("id"))
                fail(where, ": added_tokens: each entry needs 'id' and 'content'");
            const bool special = a.value("special", false);
            put(a["content"].get<std::string>(), a["id"],
                special ? TokenType::CONTROL : TokenType::USER_DEFINED, "added_tokens");
        }
    }
    for (int64_t i = 0; i < n; ++i)
        if (!have[i]) v.tokens[i] = "[PAD" + std::to_string(i) + "]";

    if (auto m = model.find("merges"); m != model.end()) {
        if (!m->is_array()) fail(where, ": model.merges must be an array");
        v.merges.reserve(m->size());
        for (const auto& e : *m) {
            if (e.is_string()) {
                v.merges.push_back(e.get<std::string>());
            } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
                v.merges.push_back(e[0].get<std::string>() + " " + e[1].get<std::string>());
            } else {
                fail(where, ": model.merges: entry ", v.merges.size(),
                     " is neither \"a b\" nor [\"a\", \"b\"]");
            }
        }
    }

    // The pre-tokenizer, recognised by its split regex (the reference hashes a tokenization).
    const std::string pre_dump = tj.contains("pre_tokenizer") ? tj["pre_tokenizer"].dump() : "";
    if (pre_dump.find(R"(\\p{N}{1,3})") != std::string::npos)
        v.pre = "llama-bpe";
    else if (pre_dump.find(R"(\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*)") != std::string::npos)
        v.pre = "qwen2";
    else
        fail(where, ": pre_tokenizer not recognised (known: Qwen2 'qwen2', Llama 3 'llama-bpe')");

    // Special tokens: tokenizer_config.json first, config.json ids as the fallback.
    auto find_id = [&](const std::string& text) -> std::optional<int64_t> {
        if (text.empty()) return std::nullopt;
        for (int64_t i = n - 1; i >= 0; --i)
            if (have[i] && v.tokens[i] == text) return i;
        return std::nullopt;
    };
    const fs::path cp = dir / "tokenizer_config.json";
    json tc = fs::exists(cp) ? read_json(cp) : json::object();
    if (tc.contains("bos_token")) v.bos = find_id(token_content(tc["bos_token"]));
    if (tc.contains("eos_token")) v.eos = find_id(token_content(tc["eos_token"]));
    if (tc.contains("pad_token")) v.pad = find_id(token_content(tc["pad_token"]));
    if (tc.contains("unk_token")) v.unk = find_id(token_content(tc["unk_token"]));
    if (!v.bos && cfg.bos_id && *cfg.bos_id >= 0 && *cfg.bos_id < n) v.bos = cfg.bos_id;
    if (!v.eos && cfg.eos_id && *cfg.eos_id >= 0 && *cfg.eos_id < n) v.eos = cfg.eos_id;
    if (auto b = tc.find("add_bos_token"); b != tc.end() && b->is_boolean()) {
        v.add_bos = *b;
    } else if (auto pp = tj.find("post_processor"); pp != tj.end() && pp->is_object()) {
        // A TemplateProcessing post-processor that starts with BOS means "add BOS" (Llama 3).
        std::vector<const json*> procs{&*pp};
        if (pp->contains("processors") && (*pp)["processors"].is_array())
            for (const auto& p : (*pp)["processors"]) procs.push_back(&p);
        for (const json* p : procs)
            if (p->value("type", "") == "TemplateProcessing" && p->contains("single") &&
                (*p)["single"].is_array() && !(*p)["single"].empty()) {
                const json& s0 = (*p)["single"][0];
                if (s0.contains("SpecialToken") && v.bos &&
                    s0["SpecialToken"].value("id", "") == v.tokens[*v.bos])
                    v.add_bos = true;
            }
    }
    if (auto e = tc.find("add_eos_token"); e != tc.end() && e->is_boolean()) v.add_eos = *e;
    if (auto ct = tc.find("chat_template"); ct != tc.end()) {
        if (ct->is_string()) {
            v.chat_template = *ct;
        } else if (ct->is_array()) {
            for (const auto& e : *ct)
                if (e.is_object() && e.value("name", "") == "default" && e.contains("template") &&
                    e["template"].is_string())
                    v.chat_template = e["template"];
        }
    }
    if (v.chat_template.empty() && fs::exists(dir / "chat_template.jinja")) {
        std::ifstream f(dir / "chat_template.jinja", std::ios::binary);
        std::stringstream ss;
        ss << f.rdbuf();
        v.chat_template = ss.str();
    }
    return v;
}

void write_vocab(gguf::Metadata& m, const Vocab& v) {
    m.set("tokenizer.ggml.model", gguf::Value::from_string("gpt2"));
    m.set("tokenizer.ggml.pre", gguf::Value::from_string(v.pre));
    m.set("tokenizer.ggml.tokens", gguf::Value::from_strings(v.tokens));
    m.set("tokenizer.ggml.token_type", gguf::Value::from_i32s(v.types));
    m.set("tokenizer.ggml.merges", gguf::Value::from_strings(v.merges));
    auto id = [&](const char* key, const std::optional<int64_t>& x) {
        if (x) m.set(key, gguf::Value::from_u32(static_cast<uint32_t>(*x)));
    };
    id("tokenizer.ggml.eos_token_id", v.eos);
    id("tokenizer.ggml.padding_token_id", v.pad);
    id("tokenizer.ggml.bos_token_id", v.bos);
    id("tokenizer.ggml.unknown_token_id", v.unk);
    m.set("tokenizer.ggml.add_bos_token", gguf::Value::from_bool(v.add_bos));
    if (v.add_eos) m.set("tokenizer.ggml.add_eos_token", gguf::Value::from_bool(*v.add_eos));
    if (!v.chat_template.empty())
        m.set("tokenizer.chat_template", gguf::Value::from_string(v.chat_template));
}

// ---- tensors ------------------------------------------------------------------------------------

struct SourceTensor {
    std::string hf_name, gguf_name;
    const safetensors::File* file = nullptr;
    const safetensors::TensorInfo* info = nullptr;
    int permute_heads = 0;  // > 0: LLaMA Q/K rows to permute with this many heads
    std::vector<int64_t> hf_shape;
    int order = 0;  // sort key within a layer
};

// GGUF name and in-layer order for an HF tensor name; nullopt to skip; "" if unknown.
std::optional<std::pair<std::string, int>> map_name(const std::string& hf, int64_t n_layer) {
    if (hf == "model.embed_tokens.weight") return std::pair{std::string("token_embd.weight"), 0};
    if (hf == "model.norm.weight") return std::pair{std::string("output_norm.weight"), 1};
    if (hf == "lm_head.weight") return std::pair{std::string("output.weight"), 2};
    const std::string pfx = "model.layers.";
    if (hf.rfind(pfx, 0) == 0) {
        size_t i = pfx.size();
        int64_t layer = 0;
        size_t digits = 0;
        while (i < hf.size() && std::isdigit(static_cast<unsigned char>(hf[i])) && digits < 7) {
            layer = layer * 10 + (hf[i++] - '0');
            ++digits;
        }
        if (digits == 0 || i >= hf.size() || hf[i] != '.' || layer >= n_layer)
            return std::pair{std::string(), 0};
        const std::string rest = hf.substr(i + 1);
        if (rest.find("rotary_emb.inv_freq") != std::string::npos) return std::nullopt;
        static const std::pair<const char*, const char*> kMap[] = {
            {"input_layernorm.weight", "attn_norm.weight"},
            {"self_attn.q_proj.weight", "attn_q.weight"},
            {"self_attn.k_proj.weight", "attn_k.weight"},
            {"self_attn.v_proj.weight", "attn_v.weight"},
            {"self_attn.o_proj.weight", "attn_output.weight"},
            {"self_attn.q_proj.bias", "attn_q.bias"},
            {"self_attn.k_proj.bias", "attn_k.bias"},
            {"self_attn.v_proj.bias", "attn_v.bias"},
            {"self_attn.q_norm.weight", "attn_q_norm.weight"},
            {"self_attn.k_norm.weight", "attn_k_norm.weight"},
            {"post_attention_layernorm.weight", "ffn_norm.weight"},
            {"mlp.gate_proj.weight", "ffn_gate.weight"},
            {"mlp.up_proj.weight", "ffn_up.weight"},
            {"mlp.down_proj.weight", "ffn_down.weight"},
        };
        for (size_t k = 0; k < std::size(kMap); ++k)
            if (rest == kMap[k].first)
                return std::pair{"blk." + std::to_string(layer) + "." + kMap[k].second,
                                 static_cast<int>(k)};
    }
    return std::pair{std::string(), 0};
}

// Expected HF shape ([out, in] for matrices) of a GGUF tensor name, from config.json.
std::vector<int64_t> expected_shape(const std::string& g, const Config& c) {
    const int64_t qd = c.n_head * c.head_dim, kvd = c.n_head_kv * c.head_dim;
    auto ends = [&](const char* s) {
        const size_t n = std::strlen(s);
        return g.size() >= n && g.compare(g.size() - n, n, s) == 0;
    };
    if (g == "token_embd.weight" || g == "output.weight") return {c.n_vocab, c.n_embd};
    if (g == "output_norm.weight" || ends("attn_norm.weight") || ends("ffn_norm.weight"))
        return {c.n_embd};
    if (ends("attn_q.weight")) return {qd, c.n_embd};
    if (ends("attn_k.weight") || ends("attn_v.weight")) return {kvd, c.n_embd};
    if (ends("attn_output.weight")) return {c.n_embd, qd};
    if (ends("attn_q.bias")) return {qd};
    if (ends("attn_k.bias") || ends("attn_v.bias")) return {kvd};
    if (ends("attn_q_norm.weight") || ends("attn_k_norm.weight")) return {c.head_dim};
    if (ends("ffn_gate.weight") || ends("ffn_up.weight")) return {c.n_ff, c.n_embd};
    if (ends("ffn_down.weight")) return {c.n_embd, c.n_ff};
    return {};
}

std::string shape_str(const std::vector<int64_t>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

// HF rotate-half rows → GGUF interleaved pairs, per head (rows of `cols` floats).
void permute_rows(std::vector<float>& w, int64_t rows, int64_t cols, int heads) {
    const int64_t hd = rows / heads, half = hd / 2;
    std::vector<float> out(w.size());
    for (int64_t h = 0; h < heads; ++h)
        for (int64_t a = 0; a < 2; ++a)
            for (int64_t b = 0; b < half; ++b)
                std::copy_n(&w[(h * hd + a * half + b) * cols], cols,
                            &out[(h * hd + 2 * b + a) * cols]);
    w.swap(out);
}

// Llama 3.1 "llama3" rope scaling as per-pair frequency divisors (rope_freqs.weight).
std::vector<float> llama3_rope_factors(const Config& c) {
    const json& r = c.rope_scaling;
    const double factor = r.value("factor", 8.0), lo = r.value("low_freq_factor", 1.0),
                 hi = r.value("high_freq_factor", 4.0),
                 old_ctx = r.value("original_max_position_embeddings", 8192.0);
    const double lo_wl = old_ctx / lo, hi_wl = old_ctx / hi;
    const int64_t dim = c.head_dim;
    std::vector<float> f;
    for (int64_t i = 0; i < dim; i += 2) {
        const double freq = 1.0 / std::pow(c.rope_theta, double(i) / dim);
        const double wl = 2 * std::numbers::pi / freq;
        double v;
        if (wl < hi_wl)
            v = 1;
        else if (wl > lo_wl)
            v = factor;
        else {
            const double smooth = (old_ctx / wl - lo) / (hi - lo);
            v = 1 / ((1 - smooth) / factor + smooth);
        }
        f.push_back(static_cast<float>(v));
    }
    return f;
}

struct ShardSet {
    std::vector<std::unique_ptr<safetensors::File>> files;
};

ShardSet open_shards(const fs::path& dir) {
    ShardSet s;
    const fs::path index = dir / "model.safetensors.index.json";
    if (fs::exists(index)) {
        const json j = read_json(index);
        auto wm = j.find("weight_map");
        if (wm == j.end() || !wm->is_object())
            fail(index.string(), ": missing 'weight_map' object");
        std::set<std::string> names;
        for (auto it = wm->begin(); it != wm->end(); ++it) {
            if (!it->is_string())
                fail(index.string(), ": weight_map[", it.key(), "] must be a file name");
            const std::string f = it->get<std::string>();
            if (f.find('/') != std::string::npos || f.find("..") != std::string::npos)
                fail(index.string(), ": weight_map[", it.key(), "] = '", f,
                     "' must be a file in the model folder");
            names.insert(f);
        }
        for (const auto& n : names)
            s.files.push_back(std::make_unique<safetensors::File>((dir / n).string()));
    } else if (fs::exists(dir / "model.safetensors")) {
        s.files.push_back(
            std::make_unique<safetensors::File>((dir / "model.safetensors").string()));
    } else {
        fail(dir.string(), ": no model.safetensors or model.safetensors.index.json");
    }
    return s;
}

void write_hparams(gguf::Metadata& m, const Config& c, uint32_t file_type) {
    const std::string a = c.arch + ".";
    m.set("general.architecture", gguf::Value::from_string(c.arch));
    m.set("general.type", gguf::Value::from_string("model"));
    m.set("general.name", gguf::Value::from_string(c.name));
    m.set(a + "block_count", gguf::Value::from_u32(static_cast<uint32_t>(c.n_layer)));
    m.set(a + "context_length", gguf::Value::from_u32(static_cast<uint32_t>(c.n_ctx)));
    m.set(a + "embedding_length", gguf::Value::from_u32(static_cast<uint32_t>(c.n_embd)));
    m.set(a + "feed_forward_length", gguf::Value::from_u32(static_cast<uint32_t>(c.n_ff)));
    m.set(a + "attention.head_count", gguf::Value::from_u32(static_cast<uint32_t>(c.n_head)));
    m.set(a + "attention.head_count_kv", gguf::Value::from_u32(static_cast<uint32_t>(c.n_head_kv)));
    m.set(a + "rope.freq_base", gguf::Value::from_f32(static_cast<float>(c.rope_theta)));
    m.set(a + "attention.layer_norm_rms_epsilon", gguf::Value::from_f32(static_cast<float>(c.eps)));
    if (c.head_dim != c.n_embd / c.n_head) {
        m.set(a + "attention.key_length", gguf::Value::from_u32(static_cast<uint32_t>(c.head_dim)));
        m.set(a + "attention.value_length",
              gguf::Value::from_u32(static_cast<uint32_t>(c.head_dim)));
    }
    m.set("general.file_type", gguf::Value::from_u32(file_type));
    if (c.arch == "llama") {
        m.set(a + "vocab_size", gguf::Value::from_u32(static_cast<uint32_t>(c.n_vocab)));
        m.set(a + "rope.dimension_count", gguf::Value::from_u32(static_cast<uint32_t>(c.head_dim)));
    }
    if (!c.rope_scaling.is_null()) {
        const std::string t = c.rope_scaling.value("rope_type", c.rope_scaling.value("type", ""));
        if (t == "linear") {
            m.set(a + "rope.scaling.type", gguf::Value::from_string("linear"));
            m.set(a + "rope.scaling.factor",
                  gguf::Value::from_f32(static_cast<float>(c.rope_scaling.value("factor", 1.0))));
        } else if (t != "llama3" && t != "default" && !t.empty()) {
            fail(c.path, ": rope_scaling type '", t, "' is not supported (linear, llama3)");
        }
    }
    m.set("general.quantization_version", gguf::Value::from_u32(2));
}

// Direct-write tensor type for 2-D weights (F32, F16, BF16, Q8_0).
std::optional<DType> direct_type(FileType ft) {
    switch (ft) {
        case FileType::ALL_F32:
            return DType::F32;
        case FileType::MOSTLY_F16:
            return DType::F16;
        case FileType::MOSTLY_BF16:
            return DType::BF16;
        case FileType::Q8_0:
            return DType::Q8_0;
        default:
            return std::nullopt;
    }
}

void convert_direct(const fs::path& dir, const Config& c, const Vocab& v, const std::string& out,
                    FileType ft, bool vocab_only, const ConvertOptions& o) {
    auto log = [&](const std::string& s) {
        if (o.log) o.log(s);
    };
    gguf::Writer w(out);
    write_hparams(w.meta(), c, static_cast<uint32_t>(ft));
    write_vocab(w.meta(), v);
    if (vocab_only) {
        w.finish();
        return;
    }
    const DType wtype = *direct_type(ft);
    ShardSet shards = open_shards(dir);

    std::vector<SourceTensor> src;
    std::set<std::string> seen;
    for (const auto& f : shards.files)
        for (const auto& t : f->tensors()) {
            auto m = map_name(t.name, c.n_layer);
            if (!m) continue;
            if (m->first.empty())
                fail(f->path(), ": tensor ", t.name, " is not part of a ", c.arch,
                     " model (cannot map it to a GGUF name)");
            if (m->first == "output.weight" && c.tied) continue;  // tied: token_embd serves
            if (!seen.insert(m->first).second)
                fail(f->path(), ": tensor ", t.name, " appears twice");
            const auto want = expected_shape(m->first, c);
            if (want != t.shape)
                fail(f->path(), ": tensor ", t.name, " has shape ", shape_str(t.shape),
                     ", config.json implies ", shape_str(want));
            SourceTensor s;
            s.hf_name = t.name;
            s.gguf_name = m->first;
            s.file = f.get();
            s.info = &t;
            s.hf_shape = t.shape;
            s.order = m->second;
            if (c.arch == "llama") {
                if (m->first.find("attn_q.weight") != std::string::npos) s.permute_heads = c.n_head;
                if (m->first.find("attn_k.weight") != std::string::npos)
                    s.permute_heads = c.n_head_kv;
            }
            src.push_back(s);
        }
    // Every tensor the architecture needs must be present.
    std::vector<std::string> need = {"token_embd.weight", "output_norm.weight"};
    for (int64_t l = 0; l < c.n_layer; ++l)
        for (const char* n : {"attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight",
                              "attn_output.weight", "ffn_norm.weight", "ffn_gate.weight",
                              "ffn_up.weight", "ffn_down.weight"})
            need.push_back("blk." + std::to_string(l) + "." + n);
    if (c.arch == "qwen2")
        for (int64_t l = 0; l < c.n_layer; ++l)
            for (const char* n : {"attn_q.bias", "attn_k.bias", "attn_v.bias"})
                need.push_back("blk." + std::to_string(l) + "." + n);
    if (c.arch == "qwen3")
        for (int64_t l = 0; l < c.n_layer; ++l)
            for (const char* n : {"attn_q_norm.weight", "attn_k_norm.weight"})
                need.push_back("blk." + std::to_string(l) + "." + n);
    for (const auto& n : need)
        if (!seen.count(n))
            fail(dir.string(), ": the checkpoint has no tensor for ", n, " (", c.arch, ")");

    auto layer_of = [](const std::string& g) -> int64_t {
        return g.rfind("blk.", 0) == 0 ? std::stoll(g.substr(4)) : -1;
    };
    std::stable_sort(src.begin(), src.end(), [&](const SourceTensor& a, const SourceTensor& b) {
        const int64_t la = layer_of(a.gguf_name), lb = layer_of(b.gguf_name);
        const int64_t ka = la < 0 ? (a.order == 0 ? -2 : c.n_layer + a.order) : la;
        const int64_t kb = lb < 0 ? (b.order == 0 ? -2 : c.n_layer + b.order) : lb;
        if (ka != kb) return ka < kb;
        return a.order < b.order;
    });

    std::vector<float> rope_factors;
    const std::string rs_type =
        c.rope_scaling.is_object()
            ? c.rope_scaling.value("rope_type", c.rope_scaling.value("type", ""))
            : "";
    if (c.arch == "llama" && rs_type == "llama3") {
        rope_factors = llama3_rope_factors(c);
        w.add_tensor("rope_freqs.weight", DType::F32, {static_cast<int64_t>(rope_factors.size())});
    }
    std::vector<DType> types;
    for (const auto& s : src) {
        std::vector<int64_t> ne(s.hf_shape.rbegin(), s.hf_shape.rend());
        DType t = DType::F32;
        if (ne.size() >= 2) {
            t = wtype;
            if (ne[0] % dtype_info(t).block_size != 0) t = DType::F16;
        }
        types.push_back(t);
        w.add_tensor(s.gguf_name, t, ne);
    }
    w.begin_data();
    if (!rope_factors.empty())
        w.write_tensor_data("rope_freqs.weight", rope_factors.data(), rope_factors.size() * 4);
    std::vector<uint8_t> buf;
    for (size_t i = 0; i < src.size(); ++i) {
        const SourceTensor& s = src[i];
        std::vector<float> f32 = s.file->to_f32(*s.info);
        const int64_t cols = s.hf_shape.size() >= 2 ? s.hf_shape.back() : s.hf_shape[0];
        const int64_t rows = static_cast<int64_t>(f32.size()) / std::max<int64_t>(1, cols);
        if (s.permute_heads > 0) {
            if (rows % (2 * s.permute_heads) != 0)
                fail(s.file->path(), ": tensor ", s.hf_name, ": ", rows,
                     " rows cannot be split into ", s.permute_heads, " heads of even size");
            permute_rows(f32, rows, cols, s.permute_heads);
        }
        const DType t = types[i];
        const size_t rb = dtype_row_bytes(t, cols);
        buf.resize(rb * rows);
        for (int64_t r = 0; r < rows; ++r)
            kernels::quantize_row(t, &f32[r * cols], buf.data() + r * rb, cols);
        w.write_tensor_data(s.gguf_name, buf.data(), buf.size());
        log(s.hf_name + " -> " + s.gguf_name + " " + shape_str(s.hf_shape) + " " + dtype_name(t) +
            (s.permute_heads ? " (permuted)" : ""));
    }
    w.finish();
}

}  // namespace

void convert_hf(const std::string& hf_dir, const std::string& out_path, const ConvertOptions& o) {
    const fs::path dir(hf_dir);
    if (!fs::is_directory(dir)) fail(hf_dir, ": not a directory");
    auto ft = file_type_from_name(o.type);
    if (!ft)
        fail("unknown --type '", o.type, "'; choose f32, f16, bf16 or one of ", file_type_list());
    const Config c = parse_config(dir);
    const Vocab v = build_vocab(dir, c);
    if (auto d = direct_type(*ft); d || o.vocab_only) {
        convert_direct(dir, c, v, out_path, d ? *ft : FileType::MOSTLY_F16, o.vocab_only, o);
        return;
    }
    // Other mixes: an F32 intermediate next to the output, then the quantizer.
    const std::string tmp = out_path + ".f32.tmp";
    struct Remove {
        std::string p;
        ~Remove() {
            std::error_code ec;
            fs::remove(p, ec);
        }
    } guard{tmp};
    convert_direct(dir, c, v, tmp, FileType::ALL_F32, false, o);
    QuantizeOptions qo;
    qo.ftype = *ft;
    qo.n_threads = o.n_threads;
    qo.log = o.log;
    quantize_model(tmp, out_path, qo);
}

}  // namespace duan
