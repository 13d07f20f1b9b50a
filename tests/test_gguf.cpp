// GGUF reader/writer: round trips of every value type and of tensors at several alignments, the
// reference files under testdata, and a table of corrupt inputs made by mutating a valid small
// file (each must raise duan::Error naming file, offset and key/tensor — never crash).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <set>

#include "core/error.h"
#include "format/gguf.h"
#include "format/gguf_writer.h"
#include "testdata.h"

namespace fs = std::filesystem;
using namespace duan;
using namespace duan::gguf;

namespace {

fs::path tmp_dir() {
    return fs::temp_directory_path() / ("duan_gguf_test_" + std::to_string(::getpid()));
}
std::string tmp_path(const std::string& name) {
    fs::create_directories(tmp_dir());
    return (tmp_dir() / name).string();
}
// Removes this process's scratch folder when the test run ends.
struct ScratchCleanup : ::testing::Environment {
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(tmp_dir(), ec);
    }
};
[[maybe_unused]] auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new ScratchCleanup);

std::vector<uint8_t> read_all(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// Parses a heap copy of exactly n bytes, so ASan sees any read past the end.
std::unique_ptr<File> parse_copy(const std::vector<uint8_t>& img, size_t n,
                                 const std::string& name = "corrupt.gguf") {
    std::unique_ptr<uint8_t[]> buf(new uint8_t[n]);
    std::memcpy(buf.get(), img.data(), n);
    File::parse(buf.get(), n, name);  // the File points into buf: it is dropped before buf
    return nullptr;
}

Value int_array(ValueType et, std::vector<int64_t> xs) {
    Value v;
    v.type = ValueType::ARRAY;
    v.elem_type = et;
    for (int64_t x : xs)
        v.nums.push_back(et == ValueType::UINT64 ? double(uint64_t(x)) : double(x));
    v.ints = std::move(xs);
    return v;
}

Value num_array(ValueType et, std::vector<double> xs) {
    Value v;
    v.type = ValueType::ARRAY;
    v.elem_type = et;
    v.nums = std::move(xs);
    return v;
}

Value scalar_u(ValueType t, uint64_t x) {
    Value v;
    v.type = t;
    v.u64 = x;
    return v;
}
Value scalar_i(ValueType t, int64_t x) {
    Value v;
    v.type = t;
    v.i64 = x;
    return v;
}
Value scalar_f(ValueType t, double x) {
    Value v;
    v.type = t;
    v.f64 = x;
    return v;
}
Value array_of(std::vector<Value> xs) {
    Value v;
    v.type = ValueType::ARRAY;
    v.elem_type = ValueType::ARRAY;
    v.arr = std::move(xs);
    return v;
}

void expect_same(const Value& a, const Value& b, const std::string& key) {
    SCOPED_TRACE(key);
    ASSERT_EQ(a.type, b.type);
    switch (a.type) {
        case ValueType::STRING:
            EXPECT_EQ(a.str, b.str);
            return;
        case ValueType::FLOAT32:
        case ValueType::FLOAT64:
            EXPECT_EQ(a.f64, b.f64);
            return;
        case ValueType::INT8:
        case ValueType::INT16:
        case ValueType::INT32:
        case ValueType::INT64:
            EXPECT_EQ(a.i64, b.i64);
            return;
        case ValueType::ARRAY:
            break;
        default:
            EXPECT_EQ(a.u64, b.u64);
            return;
    }
    ASSERT_EQ(a.elem_type, b.elem_type);
    ASSERT_EQ(a.array_size(), b.array_size());
    if (a.elem_type == ValueType::STRING) {
        EXPECT_EQ(a.strs, b.strs);
    } else if (a.elem_type == ValueType::ARRAY) {
        for (size_t i = 0; i < a.arr.size(); ++i) expect_same(a.arr[i], b.arr[i], key);
    } else {
        EXPECT_EQ(a.nums, b.nums);
        if (!a.ints.empty()) {
            EXPECT_EQ(a.ints, b.ints);
        }
    }
}

std::vector<uint8_t> pattern(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(rng());
    return v;
}

// The small valid file the corruption table mutates: 5 keys, 2 tensors.
std::string write_small(const std::string& name, uint64_t alignment = 32) {
    std::string path = tmp_path(name);
    Writer w(path, alignment);
    w.meta().set("general.architecture", Value::from_string("llama"));
    w.meta().set("key.a", Value::from_u32(7));
    w.meta().set("key.b", Value::from_i32(-1));
    w.meta().set("tok.list", Value::from_strings({"a", "bc", ""}));
    w.add_tensor("t.a", DType::F32, {8, 2});
    w.add_tensor("t.b", DType::Q4_0, {64});
    auto a = pattern(64, 1), b = pattern(36, 2);
    w.write_tensor_data("t.a", a.data(), a.size());
    w.write_tensor_data("t.b", b.data(), b.size());
    w.finish();
    return path;
}

// Offset of the GGUF string `s` (u64 length + bytes) in the image; it must occur once.
size_t find_str(const std::vector<uint8_t>& img, const std::string& s) {
    std::string enc(8, '\0');
    uint64_t n = s.size();
    std::memcpy(enc.data(), &n, 8);
    enc += s;
    std::string hay(img.begin(), img.end());
    size_t p = hay.find(enc);
    EXPECT_NE(p, std::string::npos) << s;
    EXPECT_EQ(hay.find(enc, p + 1), std::string::npos) << s;
    return p;
}
void put_u32(std::vector<uint8_t>& img, size_t off, uint32_t v) {
    std::memcpy(&img[off], &v, 4);
}
void put_u64(std::vector<uint8_t>& img, size_t off, uint64_t v) {
    std::memcpy(&img[off], &v, 8);
}
uint64_t get_u64(const std::vector<uint8_t>& img, size_t off) {
    uint64_t v;
    std::memcpy(&v, &img[off], 8);
    return v;
}
// Field offsets of a tensor info with `n_dims` dims, found by name.
size_t t_ndims(const std::vector<uint8_t>& img, const std::string& t) {
    return find_str(img, t) + 8 + t.size();
}
size_t t_ne(const std::vector<uint8_t>& img, const std::string& t, int i) {
    return t_ndims(img, t) + 4 + 8 * i;
}
size_t t_type(const std::vector<uint8_t>& img, const std::string& t, int n_dims) {
    return t_ne(img, t, n_dims);
}
size_t t_offset(const std::vector<uint8_t>& img, const std::string& t, int n_dims) {
    return t_type(img, t, n_dims) + 4;
}
size_t kv_type(const std::vector<uint8_t>& img, const std::string& key) {
    return find_str(img, key) + 8 + key.size();
}

std::string parse_error(const std::vector<uint8_t>& img, const std::string& name = "corrupt.gguf") {
    try {
        parse_copy(img, img.size(), name);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

// ---- round trips -------------------------------------------------------------------------------

TEST(Gguf, RoundTripEveryValueType) {
    std::vector<std::pair<std::string, Value>> kv = {
        {"u8", scalar_u(ValueType::UINT8, 255)},
        {"i8", scalar_i(ValueType::INT8, -128)},
        {"u16", scalar_u(ValueType::UINT16, 65535)},
        {"i16", scalar_i(ValueType::INT16, -32768)},
        {"u32", Value::from_u32(0xffffffffu)},
        {"i32", Value::from_i32(std::numeric_limits<int32_t>::min())},
        {"f32", Value::from_f32(-3.25f)},
        {"bool.t", Value::from_bool(true)},
        {"bool.f", Value::from_bool(false)},
        {"str", Value::from_string(std::string("h\xc3\xa9llo\0x", 8))},
        {"str.empty", Value::from_string("")},
        {"u64", Value::from_u64(std::numeric_limits<uint64_t>::max())},
        {"i64", scalar_i(ValueType::INT64, std::numeric_limits<int64_t>::min())},
        {"f64", scalar_f(ValueType::FLOAT64, -1e300)},
        {"a.u8", int_array(ValueType::UINT8, {0, 1, 255})},
        {"a.i8", int_array(ValueType::INT8, {-128, 0, 127})},
        {"a.u16", int_array(ValueType::UINT16, {65535, 3})},
        {"a.i16", int_array(ValueType::INT16, {-32768, 32767})},
        {"a.u32", int_array(ValueType::UINT32, {0, 4000000000})},
        {"a.i32", Value::from_i32s({-5, 0, std::numeric_limits<int32_t>::max()})},
        {"a.u64", int_array(ValueType::UINT64, {-1, 0, 42})},  // -1: UINT64_MAX bit pattern
        {"a.i64", int_array(ValueType::INT64, {std::numeric_limits<int64_t>::min(), 1})},
        {"a.f32", Value::from_f32s({1.5f, -2.25f, 0.f})},
        {"a.f64", num_array(ValueType::FLOAT64, {1e-300, -7.0})},
        {"a.bool", int_array(ValueType::BOOL, {1, 0, 1})},
        {"a.str",
         Value::from_strings({"", "a", "\xe6\x97\xa5\xe6\x9c\xac", std::string(300, 'z')})},
        {"a.empty", Value::from_i32s({})},
        {"a.empty_str", Value::from_strings({})},
        {"a.nested", array_of({Value::from_i32s({1, 2}), Value::from_i32s({3})})},
        {"a.nested_str", array_of({Value::from_strings({"x", "yz"}), Value::from_strings({})})},
        {"a.nested3", array_of({array_of({Value::from_f32s({0.5f})}), array_of({})})},
    };
    std::string path = tmp_path("values.gguf");
    {
        Writer w(path);
        for (const auto& [k, v] : kv) w.meta().set(k, v);
        w.finish();
    }
    EXPECT_FALSE(fs::exists(path + ".tmp"));
    auto f = File::open(path);
    EXPECT_EQ(f->version(), 3u);
    EXPECT_EQ(f->alignment(), 32u);
    EXPECT_TRUE(f->tensors().empty());
    ASSERT_EQ(f->meta().items().size(), kv.size());
    for (size_t i = 0; i < kv.size(); ++i) {
        EXPECT_EQ(f->meta().items()[i].first, kv[i].first);  // order preserved
        expect_same(kv[i].second, f->meta().items()[i].second, kv[i].first);
    }
    // Integer arrays also come back as exact ints; u64's top bit survives.
    EXPECT_EQ(f->meta().find("a.u64")->ints[0], -1);
    EXPECT_EQ(f->meta().find("a.u8")->ints, (std::vector<int64_t>{0, 1, 255}));
}

TEST(Gguf, RoundTripTensorsAtSeveralAlignments) {
    struct T {
        const char* name;
        DType type;
        std::vector<int64_t> ne;
    };
    const std::vector<T> ts = {
        {"f32", DType::F32, {5, 3}},      {"f16", DType::F16, {7}},
        {"q4_0", DType::Q4_0, {32, 2}},   {"q8_0", DType::Q8_0, {64}},
        {"q4_k", DType::Q4_K, {256, 2}},  {"q6_k", DType::Q6_K, {256}},
        {"bf16", DType::BF16, {3, 1, 2}}, {"i32.4d", DType::I32, {1, 1, 1, 4}},
        {"empty", DType::F32, {0, 4}},    {"q5_1", DType::Q5_1, {32, 3}},
    };
    for (uint64_t align : {1u, 8u, 32u, 64u, 4096u}) {
        SCOPED_TRACE(align);
        std::string path = tmp_path("tensors_" + std::to_string(align) + ".gguf");
        std::vector<std::vector<uint8_t>> datas;
        {
            Writer w(path, align);
            w.meta().set("general.architecture", Value::from_string("test"));
            for (const auto& t : ts) w.add_tensor(t.name, t.type, t.ne);
            w.begin_data();
            uint32_t seed = 1;
            for (const auto& t : ts) {
                std::string why;
                size_t n = *tensor_n_bytes(t.type, t.ne, &why);
                datas.push_back(pattern(n, seed++));
                w.write_tensor_data(t.name, datas.back().data(), n);
            }
            w.finish();
        }
        auto f = File::open(path);
        EXPECT_EQ(f->alignment(), align);
        EXPECT_EQ(f->data_offset() % align, 0u);
        ASSERT_EQ(f->tensors().size(), ts.size());
        uint64_t end = f->data_offset();
        for (size_t i = 0; i < ts.size(); ++i) {
            const TensorInfo& ti = f->tensors()[i];
            EXPECT_EQ(ti.name, ts[i].name);
            EXPECT_EQ(ti.type, ts[i].type);
            EXPECT_EQ(ti.ne, ts[i].ne);
            EXPECT_EQ(ti.n_bytes, datas[i].size());
            EXPECT_EQ(ti.offset % align, 0u);
            EXPECT_EQ(static_cast<uint64_t>(ti.data - f->base()) % align, 0u);
            if (ti.n_bytes) {
                EXPECT_EQ(std::memcmp(ti.data, datas[i].data(), ti.n_bytes), 0) << ti.name;
            }
            EXPECT_EQ(f->find_tensor(ts[i].name), &ti);
            end = f->data_offset() + ti.offset + (ti.n_bytes + align - 1) / align * align;
        }
        EXPECT_EQ(f->file_size(), end);  // each tensor padded, the last one too
        EXPECT_EQ(f->find_tensor("nope"), nullptr);
        EXPECT_EQ(f->tensors()[0].n_elements(), 15);
        EXPECT_EQ(f->tensors()[0].n_rows(), 3);
    }
}

TEST(Gguf, MetadataGetters) {
    Metadata m;
    m.set("u8", scalar_u(ValueType::UINT8, 200));
    m.set("neg", Value::from_i32(-1));
    m.set("big", Value::from_u64(std::numeric_limits<uint64_t>::max()));
    m.set("f", Value::from_f32(0.5f));
    m.set("s", Value::from_string("hi"));
    m.set("b", Value::from_bool(true));
    m.set("toks", Value::from_strings({"a", "b"}));
    m.set("ids", Value::from_i32s({1, -2}));
    m.set("u64s", int_array(ValueType::UINT64, {-1}));
    EXPECT_EQ(m.get_u32("u8"), 200u);
    EXPECT_EQ(m.get_i64("neg"), -1);
    EXPECT_FALSE(m.get_u32("missing").has_value());
    EXPECT_THROW(m.get_u32("neg"), Error);
    EXPECT_THROW(m.get_i64("big"), Error);
    EXPECT_EQ(m.get_f32("f"), 0.5f);
    EXPECT_EQ(m.get_f32("u8"), 200.f);
    EXPECT_EQ(m.get_bool("b"), true);
    EXPECT_EQ(m.get_string("s"), "hi");
    try {
        m.get_string("u8");
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("u8"), std::string::npos) << e.what();
    }
    ASSERT_NE(m.get_strings("toks"), nullptr);
    EXPECT_EQ(m.get_strings("toks")->size(), 2u);
    EXPECT_EQ(m.get_strings("missing"), nullptr);
    EXPECT_THROW(m.get_strings("ids"), Error);
    EXPECT_EQ(*m.get_f32s("ids"), (std::vector<float>{1.f, -2.f}));
    EXPECT_EQ(*m.get_i32s("ids"), (std::vector<int32_t>{1, -2}));
    EXPECT_THROW(m.get_i32s("u64s"), Error);  // UINT64_MAX does not fit
    EXPECT_THROW(m.get_i32s("toks"), Error);
    EXPECT_FALSE(m.get_f32s("missing").has_value());
    Value only_ints;  // built by hand with `ints` only
    only_ints.type = ValueType::ARRAY;
    only_ints.elem_type = ValueType::INT16;
    only_ints.ints = {3, -4};
    m.set("only_ints", only_ints);
    EXPECT_EQ(*m.get_f32s("only_ints"), (std::vector<float>{3.f, -4.f}));
    EXPECT_EQ(*m.get_i32s("only_ints"), (std::vector<int32_t>{3, -4}));
    EXPECT_THROW(m.get_i32s("f"), Error);  // a scalar, not an array
    EXPECT_EQ(m.require_u32("u8", "x.gguf"), 200u);
    try {
        m.require_u32("missing.key", "x.gguf");
        FAIL();
    } catch (const Error& e) {
        std::string s = e.what();
        EXPECT_NE(s.find("x.gguf"), std::string::npos) << s;
        EXPECT_NE(s.find("missing.key"), std::string::npos) << s;
    }
    m.set("u8", Value::from_u32(5));  // replaces in place
    EXPECT_EQ(m.items()[0].first, "u8");
    m.erase("u8");
    EXPECT_FALSE(m.has("u8"));
    EXPECT_EQ(m.get_i64("neg"), -1);  // index rebuilt
    EXPECT_EQ(m.items()[0].first, "neg");
}

// ---- reference files ---------------------------------------------------------------------------

TEST(Gguf, ReadsEveryReferenceFile) {
    DUAN_REQUIRE_TESTDATA("models");
    int n = 0;
    for (const char* dir : {"models", "vocab"}) {
        for (const auto& e : fs::directory_iterator(test::testdata(dir))) {
            if (e.path().extension() != ".gguf") continue;
            SCOPED_TRACE(e.path().string());
            auto f = File::open(e.path().string());
            ++n;
            EXPECT_TRUE(f->version() == 2 || f->version() == 3);
            for (const auto& t : f->tensors()) {
                EXPECT_GE(t.data, f->base() + f->data_offset());
                EXPECT_LE(t.data + t.n_bytes, f->base() + f->file_size());
            }
            if (std::string(dir) == "models") {
                EXPECT_FALSE(f->tensors().empty());
                EXPECT_TRUE(f->meta().get_string("general.architecture").has_value());
            }
            EXPECT_NE(f->meta().get_strings("tokenizer.ggml.tokens"), nullptr);
        }
    }
    EXPECT_GE(n, 30);
}

TEST(Gguf, KnownFacts) {
    DUAN_REQUIRE_TESTDATA("models/stories260K.gguf");
    auto s = File::open(test::testdata("models/stories260K.gguf"));
    EXPECT_EQ(s->meta().get_string("general.architecture"), "llama");
    EXPECT_EQ(s->meta().get_u32("llama.block_count"), 5u);
    EXPECT_EQ(s->meta().get_u32("llama.embedding_length"), 64u);
    EXPECT_EQ(s->meta().get_strings("tokenizer.ggml.tokens")->size(), 512u);
    EXPECT_EQ(s->tensors().size(), 48u);  // 5 layers x 9 + token_embd, output_norm, output
    const TensorInfo* emb = s->find_tensor("token_embd.weight");
    ASSERT_NE(emb, nullptr);
    EXPECT_EQ(emb->ne, (std::vector<int64_t>{64, 512}));

    auto q = File::open(test::testdata("models/llama-tiny-q4_k_m.gguf"));
    std::set<DType> types;
    for (const auto& t : q->tensors()) types.insert(t.type);
    EXPECT_TRUE(types.count(DType::Q4_K)) << "q4_k_m should hold q4_k tensors";
    EXPECT_GE(types.size(), 3u) << "q4_k_m mixes types (q4_k, q6_k, f32 norms)";
    EXPECT_EQ(q->meta().get_u32("llama.block_count"), 2u);
}

TEST(Gguf, LargeVocabOpensQuickly) {
    DUAN_REQUIRE_TESTDATA("vocab/ggml-vocab-qwen2.gguf");
    auto t0 = std::chrono::steady_clock::now();
    auto f = File::open(test::testdata("vocab/ggml-vocab-qwen2.gguf"));
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const auto* toks = f->meta().get_strings("tokenizer.ggml.tokens");
    ASSERT_NE(toks, nullptr);
    EXPECT_GT(toks->size(), 150000u);
    EXPECT_NE(f->meta().get_strings("tokenizer.ggml.merges"), nullptr);
    RecordProperty("open_ms", std::to_string(ms));
    // The target is well under 100 ms in a release build; sanitizers and qemu are much slower.
    EXPECT_LT(ms, 5000.0);
}

// ---- corrupt inputs ----------------------------------------------------------------------------

TEST(Gguf, TruncatedAtEveryOffsetThrows) {
    auto img = read_all(write_small("trunc.gguf"));
    auto whole = File::parse(img.data(), img.size(), "trunc.gguf");
    // Everything up to the end of the last tensor's bytes is needed (its padding is not).
    const TensorInfo& last = whole->tensors().back();
    size_t need = whole->data_offset() + last.offset + last.n_bytes;
    for (size_t n = 0; n < need; ++n) {
        try {
            parse_copy(img, n, "trunc.gguf");
            ADD_FAILURE() << "no error when truncated to " << n << " bytes";
        } catch (const Error& e) {
            std::string s = e.what();
            EXPECT_NE(s.find("trunc.gguf: offset "), std::string::npos) << s;
        }
    }
    EXPECT_NO_THROW(parse_copy(img, need, "trunc.gguf"));
}

TEST(Gguf, CorruptInputsTable) {
    const auto good = read_all(write_small("small.gguf"));
    const auto good64 = read_all(write_small("small64.gguf", 64));
    ASSERT_EQ(parse_error(good), "");
    ASSERT_EQ(parse_error(good64), "");
    using M = std::function<void(std::vector<uint8_t>&)>;
    struct Case {
        const char* what;
        bool align64;
        M mutate;
        std::vector<std::string> expect;  // substrings of the message
    };
    const uint64_t big = uint64_t(1) << 63;
    const std::vector<Case> cases = {
        {"bad magic", false, [](auto& b) { b[0] = 'X'; }, {"bad magic", "offset 0"}},
        {"version 1", false, [](auto& b) { put_u32(b, 4, 1); }, {"v1 is not supported"}},
        {"version 4", false, [](auto& b) { put_u32(b, 4, 4); }, {"version 4", "offset 4"}},
        {"big endian", false, [](auto& b) { put_u32(b, 4, 0x03000000); }, {"big-endian"}},
        {"n_tensors 2^63",
         false,
         [&](auto& b) { put_u64(b, 8, big); },
         {"tensor count", "offset 8"}},
        {"n_kv 2^63", false, [&](auto& b) { put_u64(b, 16, big); }, {"metadata count"}},
        {"n_kv max", false, [](auto& b) { put_u64(b, 16, ~uint64_t(0)); }, {"metadata count"}},
        {"n_kv +1", false, [](auto& b) { put_u64(b, 16, 5); }, {}},
        {"string array 2^63",
         false,
         [&](auto& b) { put_u64(b, kv_type(b, "tok.list") + 8, big); },
         {"array of", "(key tok.list)"}},
        {"key length 2^63",
         false,
         [&](auto& b) { put_u64(b, 24, big); },
         {"key length", "(key #0)", "offset 24"}},
        {"value string past end",
         false,
         [](auto& b) { put_u64(b, kv_type(b, "general.architecture") + 4, b.size()); },
         {"past the end", "(key general.architecture)"}},
        {"unknown value type",
         false,
         [](auto& b) { put_u32(b, kv_type(b, "key.a"), 13); },
         {"unknown value type 13", "(key key.a)"}},
        {"unknown array elem type",
         false,
         [](auto& b) { put_u32(b, kv_type(b, "tok.list") + 4, 13); },
         {"unknown array element type 13", "(key tok.list)"}},
        {"array of arrays past end",
         false,
         [](auto& b) { put_u32(b, kv_type(b, "tok.list") + 4, 9); },
         {"(key tok.list)"}},
        {"duplicate key",
         false,
         [](auto& b) { b[find_str(b, "key.b") + 8 + 4] = 'a'; },
         {"duplicate key", "(key key.a)"}},
        {"n_dims 0",
         false,
         [](auto& b) { put_u32(b, t_ndims(b, "t.a"), 0); },
         {"0 dimensions", "(tensor t.a)"}},
        {"n_dims 5", false, [](auto& b) { put_u32(b, t_ndims(b, "t.a"), 5); }, {"(tensor t.a)"}},
        {"n_dims 2^31",
         false,
         [](auto& b) { put_u32(b, t_ndims(b, "t.a"), 1u << 31); },
         {"dimensions", "(tensor t.a)"}},
        {"element count overflow",
         false,
         [](auto& b) {
             put_u64(b, t_ne(b, "t.a", 0), uint64_t(1) << 32);
             put_u64(b, t_ne(b, "t.a", 1), uint64_t(1) << 32);
         },
         {"overflows", "(tensor t.a)"}},
        {"byte size overflow",
         false,
         [](auto& b) {
             put_u64(b, t_ne(b, "t.a", 0), uint64_t(1) << 61);
             put_u64(b, t_ne(b, "t.a", 1), 1);
         },
         {"overflows", "(tensor t.a)"}},
        {"negative dim",
         false,
         [](auto& b) { put_u64(b, t_ne(b, "t.a", 1), ~uint64_t(0)); },
         {"negative", "(tensor t.a)"}},
        {"row not a block multiple",
         false,
         [](auto& b) { put_u64(b, t_ne(b, "t.b", 0), 48); },
         {"multiple", "q4_0", "(tensor t.b)"}},
        {"unknown type 99",
         false,
         [](auto& b) { put_u32(b, t_type(b, "t.b", 1), 99); },
         {"unknown tensor type id 99", "(tensor t.b)"}},
        {"offset past end",
         false,
         [](auto& b) { put_u64(b, t_offset(b, "t.b", 1), uint64_t(1) << 40); },
         {"past the end", "(tensor t.b)"}},
        {"offset near 2^64",
         false,
         [](auto& b) { put_u64(b, t_offset(b, "t.b", 1), ~uint64_t(31)); },
         {"past the end", "(tensor t.b)"}},
        {"size past end",
         false,
         [](auto& b) { put_u64(b, t_ne(b, "t.a", 1), 1000); },
         {"past the end", "(tensor t.a)"}},
        {"misaligned offset",
         false,
         [](auto& b) {
             size_t o = t_offset(b, "t.b", 1);
             put_u64(b, o, get_u64(b, o) + 4);
         },
         {"not aligned", "(tensor t.b)"}},
        {"duplicate tensor",
         false,
         [](auto& b) { b[find_str(b, "t.b") + 8 + 2] = 'a'; },
         {"duplicate tensor name", "(tensor t.a)"}},
        {"alignment 0",
         true,
         [](auto& b) { put_u32(b, kv_type(b, "general.alignment") + 4, 0); },
         {"power of two", "general.alignment"}},
        {"alignment 3",
         true,
         [](auto& b) { put_u32(b, kv_type(b, "general.alignment") + 4, 3); },
         {"power of two", "general.alignment"}},
        {"alignment 2^31",
         true,
         [](auto& b) { put_u32(b, kv_type(b, "general.alignment") + 4, 1u << 31); },
         {"not aligned to 2147483648", "(tensor t.b)"}},
        {"data section past end",
         true,
         [](auto& b) {
             put_u32(b, kv_type(b, "general.alignment") + 4, 1u << 31);
             put_u64(b, t_offset(b, "t.b", 1), 0);
         },
         {"data section would start at 2147483648", "past the end"}},
        {"alignment not u32",
         true,
         [](auto& b) { put_u32(b, kv_type(b, "general.alignment"), 5); },
         {"must be a u32", "general.alignment"}},
        {"data truncated",
         false,
         [](auto& b) { b.erase(b.end() - 40, b.end()); },
         {"past the end", "(tensor t.b)"}},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        auto img = c.align64 ? good64 : good;
        c.mutate(img);
        std::string msg = parse_error(img);
        ASSERT_NE(msg, "") << "no error for: " << c.what;
        EXPECT_NE(msg.find("corrupt.gguf: offset "), std::string::npos) << msg;
        for (const auto& sub : c.expect) EXPECT_NE(msg.find(sub), std::string::npos) << msg;
    }
    // Overlapping tensor data is allowed (the reference does not check it either).
    auto img = good;
    put_u64(img, t_offset(img, "t.b", 1), 0);
    EXPECT_EQ(parse_error(img), "");
}

TEST(Gguf, DeeplyNestedArraysAreRejected) {
    // GGUF | v3 | 0 tensors | 1 kv | key "x" | type ARRAY | (ARRAY, 1) × 20 | (u8, 0)
    std::vector<uint8_t> b = {'G', 'G', 'U', 'F'};
    auto u32 = [&](uint32_t v) { b.insert(b.end(), (uint8_t*)&v, (uint8_t*)&v + 4); };
    auto u64 = [&](uint64_t v) { b.insert(b.end(), (uint8_t*)&v, (uint8_t*)&v + 8); };
    u32(3), u64(0), u64(1), u64(1), b.push_back('x'), u32(9);
    for (int i = 0; i < 20; ++i) u32(9), u64(1);
    u32(0), u64(0);
    std::string msg = parse_error(b);
    EXPECT_NE(msg.find("nested deeper"), std::string::npos) << msg;
    EXPECT_NE(msg.find("(key x)"), std::string::npos) << msg;
    // An inner array claiming a huge count is bounded like any other.
    std::vector<uint8_t> c(b.begin(), b.begin() + 24 + 9 + 4);
    b = c;
    u32(9), u64(1), u32(0), u64(uint64_t(1) << 62);
    msg = parse_error(b);
    EXPECT_NE(msg.find("does not fit"), std::string::npos) << msg;
}

TEST(Gguf, ParsesHeaderOnlyFileWithoutPadding) {
    // The reference writes vocab-only files that end right after the last value.
    std::vector<uint8_t> b = {'G', 'G', 'U', 'F', 2, 0, 0, 0};
    b.resize(24, 0);
    EXPECT_EQ(parse_error(b), "");
    auto f = File::parse(b.data(), b.size(), "empty.gguf");
    EXPECT_EQ(f->version(), 2u);
    EXPECT_TRUE(f->meta().items().empty());
}

// ---- writer errors -----------------------------------------------------------------------------

TEST(GgufWriter, MissingDirectoryIsAClearError) {
    Writer w("/nonexistent-duan-dir/x.gguf");
    try {
        w.finish();
        FAIL();
    } catch (const Error& e) {
        std::string s = e.what();
        EXPECT_NE(s.find("/nonexistent-duan-dir/x.gguf.tmp"), std::string::npos) << s;
        EXPECT_NE(s.find("No such file or directory"), std::string::npos) << s;
    }
}

TEST(GgufWriter, MisuseIsRejectedAndLeavesNoFile) {
    std::string path = tmp_path("misuse.gguf");
    {
        Writer w(path);
        EXPECT_THROW(w.add_tensor("q", DType::Q4_0, {48}), Error);  // not a block multiple
        EXPECT_THROW(w.add_tensor("n", DType::F32, {1, 1, 1, 1, 1}), Error);
        w.add_tensor("a", DType::F32, {4});
        EXPECT_THROW(w.add_tensor("a", DType::F32, {4}), Error);
        w.add_tensor("b", DType::F32, {2});
        float x[4] = {};
        EXPECT_THROW(w.write_tensor_data("b", x, 8), Error);   // out of order
        EXPECT_THROW(w.write_tensor_data("a", x, 12), Error);  // wrong size
        w.write_tensor_data("a", x, 16);
        EXPECT_TRUE(fs::exists(path + ".tmp"));
        EXPECT_THROW(w.add_tensor("c", DType::F32, {2}), Error);  // after begin_data
        EXPECT_THROW(w.finish(), Error);                          // "b" missing
    }
    EXPECT_FALSE(fs::exists(path + ".tmp"));
    EXPECT_FALSE(fs::exists(path));
    EXPECT_THROW(Writer(path, 3), Error);
    EXPECT_THROW(Writer(path, 0), Error);
}

TEST(GgufWriter, FullDiskKeepsTheOldFile) {
    // RLIMIT_FSIZE makes write() fail with EFBIG, standing in for a full disk.
    std::string path = tmp_path("full.gguf");
    {
        Writer w(path);
        w.meta().set("old", Value::from_bool(true));
        w.finish();
    }
    auto old_bytes = read_all(path);
    struct rlimit saved {};
    ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
    auto saved_sig = signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = saved;
    lim.rlim_cur = 64 * 1024;
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0) GTEST_SKIP() << "cannot set RLIMIT_FSIZE";
    std::string msg;
    {
        std::vector<uint8_t> big(1 << 20, 1);
        Writer w(path);
        w.add_tensor("big", DType::I8, {static_cast<int64_t>(big.size())});
        try {
            w.write_tensor_data("big", big.data(), big.size());
            w.finish();
        } catch (const Error& e) {
            msg = e.what();
        }
    }
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, saved_sig);
    EXPECT_NE(msg.find("full.gguf.tmp"), std::string::npos) << msg;
    EXPECT_NE(msg.find("errno"), std::string::npos) << msg;
    EXPECT_FALSE(fs::exists(path + ".tmp"));
    EXPECT_EQ(read_all(path), old_bytes);
}

TEST(GgufWriter, CopiedAlignmentKeyFollowsTheWriter) {
    std::string path = tmp_path("realign.gguf");
    {
        Writer w(path, 64);
        w.meta().set("general.alignment", Value::from_u32(16));  // e.g. copied from a source file
        w.add_tensor("t", DType::F32, {3});
        float x[3] = {1, 2, 3};
        w.write_tensor_data("t", x, sizeof x);
        w.finish();
    }
    auto f = File::open(path);
    EXPECT_EQ(f->alignment(), 64u);
    EXPECT_EQ(f->meta().get_u32("general.alignment"), 64u);
    EXPECT_EQ(reinterpret_cast<const float*>(f->tensors()[0].data)[2], 3.f);
}
