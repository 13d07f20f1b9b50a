// Small helpers shared by the SD tests: a temporary folder, the relative error the reference checks
// use, the settings of the reference run f32_euler_cpu, and writers of tiny checkpoint files.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "diffusion/pipeline.h"
#include "format/gguf_writer.h"
#include "format/safetensors.h"

namespace duan::test {

// A fresh folder under the system temp dir, removed with its content at scope exit.
struct TmpDir {
    std::string path;
    explicit TmpDir(const std::string& stem = "duan_sd") {
        path = (std::filesystem::temp_directory_path() / (stem + "_XXXXXX")).string();
        if (!mkdtemp(path.data())) ADD_FAILURE() << "mkdtemp " << path;
    }
    ~TmpDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TmpDir(const TmpDir&) = delete;
    TmpDir& operator=(const TmpDir&) = delete;
};

// max|a - r| / max|r| (sizes must match).
inline double rel_err(const std::vector<float>& a, const std::vector<float>& r) {
    EXPECT_EQ(a.size(), r.size());
    double mx = 0, mref = 0;
    for (size_t i = 0; i < r.size() && i < a.size(); ++i) {
        mx = std::max(mx, std::fabs(static_cast<double>(a[i]) - r[i]));
        mref = std::max(mref, std::fabs(static_cast<double>(r[i])));
    }
    return mx / (mref + 1e-30);
}

// The settings of the reference runs in testdata/sd/runs (f32_euler_cpu): 64×64, 4 steps, cfg 7,
// seed 42, Euler, the cpu RNG.
inline diffusion::Txt2ImgParams reference_params() {
    diffusion::Txt2ImgParams p;
    p.prompt = "a red ball on the grass";
    p.seed = 42;
    p.steps = 4;
    p.cfg = 7.0f;
    p.width = p.height = 64;
    p.sampler = diffusion::Sampler::Euler;
    p.rng = "cpu";
    return p;
}

// One tensor to write: shape outermost first (PyTorch order); `data` holds its nbytes bytes.
struct StTensor {
    std::string name;
    safetensors::DType dtype = safetensors::DType::F32;
    std::vector<int64_t> shape;
    const void* data = nullptr;
    size_t nbytes = 0;
};

// A safetensors file of the tensors, in order.
inline void write_safetensors(const std::filesystem::path& p, const std::vector<StTensor>& ts) {
    std::string h = "{";
    uint64_t off = 0;
    for (const StTensor& t : ts) {
        if (h.size() > 1) h += ",";
        h += "\"" + t.name + "\":{\"dtype\":\"" + safetensors::dtype_name(t.dtype) +
             "\",\"shape\":[";
        for (size_t i = 0; i < t.shape.size(); ++i)
            h += (i ? std::string(",") : std::string()) + std::to_string(t.shape[i]);
        h += "],\"data_offsets\":[" + std::to_string(off) + "," + std::to_string(off + t.nbytes) +
             "]}";
        off += t.nbytes;
    }
    h += "}";
    while (h.size() % 8) h += ' ';
    std::ofstream f(p, std::ios::binary);
    const uint64_t n = h.size();
    f.write(reinterpret_cast<const char*>(&n), 8);
    f.write(h.data(), static_cast<std::streamsize>(h.size()));
    for (const StTensor& t : ts)
        f.write(static_cast<const char*>(t.data), static_cast<std::streamsize>(t.nbytes));
    ASSERT_TRUE(f.good()) << p;
}

// A GGUF of F32 tensors, each (name, PyTorch shape, values); empty values write zeros.
struct F32Tensor {
    std::string name;
    std::vector<int64_t> shape;
    std::vector<float> values;
};
inline void write_f32_gguf(const std::string& path, const std::vector<F32Tensor>& ts) {
    gguf::Writer w(path);
    for (const F32Tensor& t : ts)
        w.add_tensor(t.name, DType::F32, {t.shape.rbegin(), t.shape.rend()});
    w.begin_data();
    for (const F32Tensor& t : ts) {
        int64_t numel = 1;
        for (int64_t d : t.shape) numel *= d;
        const std::vector<float> v =
            t.values.empty() ? std::vector<float>(static_cast<size_t>(numel), 0.0f) : t.values;
        ASSERT_EQ(v.size(), static_cast<size_t>(numel)) << t.name;
        w.write_tensor_data(t.name, v.data(), v.size() * 4);
    }
    w.finish();
}

}  // namespace duan::test
