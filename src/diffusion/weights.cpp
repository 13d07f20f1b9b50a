#include "diffusion/weights.h"

#include "core/error.h"
#include "core/fp16.h"

namespace duan::diffusion {

Checkpoint::Checkpoint(const std::string& path) : file_(path) {}

const safetensors::TensorInfo& Checkpoint::expect(const std::string& name, int64_t numel) const {
    const auto* t = file_.find(name);
    if (!t) fail(file_.path(), ": tensor '", name, "' is missing (not an SD 1.x checkpoint?)");
    if (t->numel() != numel)
        fail(file_.path(), ": tensor '", name, "' has ", t->numel(), " elements, expected ", numel);
    return *t;
}

Mat Checkpoint::matrix(const std::string& name, int64_t rows, int64_t cols) const {
    const auto& t = expect(name, rows * cols);
    Mat m;
    m.rows = rows;
    m.cols = cols;
    if (t.dtype == safetensors::DType::F32 && reinterpret_cast<uintptr_t>(t.data) % 4 == 0) {
        m.data = reinterpret_cast<const float*>(t.data);
    } else {
        m.own = file_.to_f32(t);
        m.data = m.own.data();
    }
    return m;
}

std::vector<float> Checkpoint::vec(const std::string& name, int64_t n) const {
    return file_.to_f32(expect(name, n));
}

Linear Checkpoint::linear(const std::string& p, int64_t in, int64_t out, bool bias) const {
    Linear l;
    const auto& t = expect(p + ".weight", out * in);
    const bool f16 = t.dtype == safetensors::DType::F16 || t.dtype == safetensors::DType::BF16;
    const std::vector<float> w = file_.to_f32(t);
    l.w = pack_weights(w.data(), out, in, f16);
    if (bias) l.b = vec(p + ".bias", out);
    return l;
}

Conv2d Checkpoint::conv(const std::string& p, int in, int out, int k) const {
    Conv2d c;
    c.in = in;
    c.out = out;
    c.k = k;
    const int64_t K = static_cast<int64_t>(in) * k * k;
    std::vector<float> w = file_.to_f32(expect(p + ".weight", out * K));
    for (auto& v : w) v = round_fp16(v);
    c.w = pack_weights(w.data(), out, K, /*round_in=*/true);
    c.b = vec(p + ".bias", out);
    return c;
}

Norm Checkpoint::norm(const std::string& p, int64_t n) const {
    return Norm{vec(p + ".weight", n), vec(p + ".bias", n)};
}

std::string Checkpoint::weight_type() const {
    const auto* t = file_.find("model.diffusion_model.input_blocks.0.0.weight");
    return t ? safetensors::dtype_name(t->dtype) : "?";
}

}  // namespace duan::diffusion
