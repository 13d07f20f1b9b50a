// safetensors reader: a valid file parses, and every kind of corruption is rejected with an error
// that names the file and (where there is one) the tensor.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "format/safetensors.h"

using duan::safetensors::DType;
using duan::safetensors::File;

namespace {

std::vector<uint8_t> image(const std::string& header, size_t data_bytes,
                           uint64_t hlen_override = 0) {
    std::vector<uint8_t> v(8);
    const uint64_t n = hlen_override ? hlen_override : header.size();
    for (int i = 0; i < 8; ++i) v[i] = static_cast<uint8_t>(n >> (8 * i));
    v.insert(v.end(), header.begin(), header.end());
    v.resize(v.size() + data_bytes);
    return v;
}

// Expects File(...) to throw with every one of `parts` in the message.
void expect_error(const std::vector<uint8_t>& bytes, std::vector<std::string> parts) {
    try {
        File f(bytes.data(), bytes.size(), "bad.safetensors");
        FAIL() << "no error; expected one mentioning " << parts[0];
    } catch (const duan::Error& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("bad.safetensors"), std::string::npos) << m;
        for (const auto& p : parts)
            EXPECT_NE(m.find(p), std::string::npos) << m << " (want " << p << ")";
    }
}

}  // namespace

TEST(Safetensors, ParsesTensorsDtypesAndMetadata) {
    const std::string h =
        R"({"__metadata__":{"format":"pt"},"b":{"dtype":"F16","shape":[2],"data_offsets":[8,12]},)"
        R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
        R"("c":{"dtype":"BF16","shape":[1],"data_offsets":[12,14]},)"
        R"("d":{"dtype":"I64","shape":[1],"data_offsets":[16,24]},"e":{"dtype":"U8","shape":[0],"data_offsets":[24,24]}})";
    auto bytes = image(h, 24);
    uint8_t* d = bytes.data() + 8 + h.size();
    const float a[2] = {1.5f, -2.0f};
    std::memcpy(d, a, 8);
    const uint16_t b[2] = {duan::fp32_to_fp16(0.25f), duan::fp32_to_fp16(3.0f)};
    std::memcpy(d + 8, b, 4);
    const uint16_t c = duan::fp32_to_bf16(-1.0f);
    std::memcpy(d + 12, &c, 2);
    const int64_t i = -7;
    std::memcpy(d + 16, &i, 8);
    File f(bytes.data(), bytes.size(), "ok.safetensors");
    ASSERT_EQ(f.tensors().size(), 5u);
    EXPECT_EQ(f.tensors()[0].name, "b");  // header order kept
    EXPECT_EQ(f.metadata().at("format"), "pt");
    EXPECT_EQ(f.get("a").dtype, DType::F32);
    EXPECT_EQ(f.to_f32(f.get("a")), (std::vector<float>{1.5f, -2.0f}));
    EXPECT_EQ(f.to_f32(f.get("b")), (std::vector<float>{0.25f, 3.0f}));
    EXPECT_EQ(f.to_f32(f.get("c")), (std::vector<float>{-1.0f}));
    EXPECT_EQ(f.to_f32(f.get("d")), (std::vector<float>{-7.0f}));
    EXPECT_EQ(f.get("e").numel(), 0);
    EXPECT_EQ(f.find("zzz"), nullptr);
    EXPECT_THROW(f.get("zzz"), duan::Error);
    EXPECT_EQ(duan::safetensors::dtype_size(DType::BF16), 2u);
    EXPECT_EQ(duan::safetensors::dtype_from_name("F8_E4M3"), DType::F8_E4M3);
}

TEST(Safetensors, RejectsCorruptHeaders) {
    expect_error({1, 2, 3}, {"at least 8"});
    expect_error(image("{}", 0, 1000), {"header length 1000", "past the end"});
    expect_error(image("{\"a\":", 0), {"not valid JSON"});
    expect_error(image("[1,2]", 0), {"not an object"});
    expect_error(image(R"({"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", 4),
                 {"'w'", "unknown dtype 'F33'"});
    expect_error(image(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4),
                 {"'w'", "4 bytes", "needs 8"});
    expect_error(image(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}})", 4),
                 {"'w'", "past the end"});
    expect_error(image(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8),
                 {"'w'", "reversed"});
    expect_error(image(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("v":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                       8),
                 {"overlaps"});
    expect_error(image(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4),
                 {"'w'", "negative"});
    expect_error(
        image(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,4]}})", 4),
        {"'w'", "too large"});
    expect_error(image(R"({"w":{"dtype":"F32","shape":[1]}})", 4), {"'w'", "data_offsets"});
    expect_error(image(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4), {"'w'", "dtype"});
    expect_error(image(R"({"__metadata__":{"k":1}})", 0), {"__metadata__"});
}

TEST(Safetensors, OpensFileAndNamesItInErrors) {
    const auto dir = std::filesystem::temp_directory_path();
    const std::string good = (dir / "duan_st_good.safetensors").string();
    const std::string bad = (dir / "duan_st_bad.safetensors").string();
    {
        auto b = image(R"({"x":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]}})", 4);
        std::ofstream(good, std::ios::binary)
            .write(reinterpret_cast<const char*>(b.data()), b.size());
        auto c = image("{garbage", 0);
        std::ofstream(bad, std::ios::binary)
            .write(reinterpret_cast<const char*>(c.data()), c.size());
    }
    File f(good);
    EXPECT_EQ(f.get("x").shape, (std::vector<int64_t>{1, 1}));
    try {
        File g(bad);
        FAIL();
    } catch (const duan::Error& e) {
        EXPECT_NE(std::string(e.what()).find(bad), std::string::npos);
    }
    EXPECT_THROW(File("/nonexistent/x.safetensors"), duan::Error);
    std::filesystem::remove(good);
    std::filesystem::remove(bad);
}
