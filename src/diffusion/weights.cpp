#include "diffusion/weights.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/fp16.h"
#include "core/shape.h"
#include "format/gguf.h"
#include "format/safetensors.h"
#include "kernels/kernels.h"

namespace duan::diffusion {

int64_t TensorView::numel() const {
    return shape_numel(shape);
}

namespace {
std::string shape_str(const std::vector<int64_t>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); ++i) {
        if (i) r += ',';
        r += std::to_string(s[i]);
    }
    return r + "]";
}
}  // namespace

Checkpoint::Checkpoint(const std::string& path) : path_(path) {
    namespace fs = std::filesystem;
    if (fs::is_directory(path)) {
        container_ = "diffusers";
        open_diffusers(*this, path);
    } else if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".gguf") == 0) {
        container_ = "gguf";
        open_gguf(path);
    } else {
        container_ = "safetensors";
        open_safetensors(path);
    }
}

Checkpoint::~Checkpoint() = default;

void Checkpoint::add(TensorView t) {
    auto [it, fresh] = index_.emplace(t.name, tensors_.size());
    if (!fresh) fail(t.source, ": tensor '", t.name, "' appears twice");
    tensors_.push_back(std::move(t));
}

void Checkpoint::add_safetensors(std::shared_ptr<safetensors::File> f,
                                 const std::function<std::string(const std::string&)>& rename) {
    for (const auto& t : f->tensors()) {
        TensorView v;
        v.name = rename ? rename(t.name) : t.name;
        if (v.name.empty()) continue;  // not used by duan
        v.shape = t.shape;
        v.data = t.data;
        v.n_bytes = t.nbytes();
        v.source = rename ? f->path() + " (" + t.name + ")" : f->path();
        switch (t.dtype) {
            case safetensors::DType::F32:
                v.type = DType::F32;
                break;
            case safetensors::DType::F16:
                v.type = DType::F16;
                break;
            case safetensors::DType::BF16:
                v.type = DType::BF16;
                break;
            default:
                continue;  // integer buffers (position_ids, …) are not used
        }
        add(std::move(v));
    }
    keep(std::move(f));
}

void Checkpoint::open_safetensors(const std::string& path) {
    add_safetensors(std::make_shared<safetensors::File>(path));
}

void Checkpoint::open_gguf(const std::string& path) {
    std::shared_ptr<gguf::File> f = gguf::File::open(path);
    for (const auto& t : f->tensors()) {
        TensorView v;
        v.name = t.name;
        v.type = t.type;
        v.shape.assign(t.ne.rbegin(), t.ne.rend());  // GGUF ne[0] is the innermost
        v.data = t.data;
        v.n_bytes = t.n_bytes;
        v.source = path;
        add(std::move(v));
    }
    keep(f);
}

const TensorView* Checkpoint::find(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorView& Checkpoint::get(const std::string& name) const {
    const TensorView* t = find(name);
    if (!t) fail(path_, ": tensor '", name, "' is missing (not a supported SD checkpoint?)");
    return *t;
}

const TensorView& Checkpoint::expect(const std::string& name, int64_t numel) const {
    const TensorView& t = get(name);
    if (t.numel() != numel)
        fail(t.source, ": tensor '", name, "' has shape ", shape_str(t.shape), " (", t.numel(),
             " elements), expected ", numel, " elements");
    return t;
}

std::vector<float> Checkpoint::to_f32(const TensorView& t) const {
    const int64_t n = t.numel();
    if (!kernels::can_dequantize(t.type))
        fail(t.source, ": tensor '", t.name, "' has type ", dtype_name(t.type),
             ", which cannot be read");
    std::vector<float> out(static_cast<size_t>(n));
    kernels::dequantize_row(t.type, t.data, out.data(), n);
    return out;
}

Mat Checkpoint::matrix(const std::string& name, int64_t rows, int64_t cols) const {
    const auto& t = expect(name, rows * cols);
    Mat m;
    m.rows = rows;
    m.cols = cols;
    if (t.type == DType::F32 && reinterpret_cast<uintptr_t>(t.data) % 4 == 0) {
        m.data = reinterpret_cast<const float*>(t.data);
    } else {
        m.own = to_f32(t);
        m.data = m.own.data();
    }
    return m;
}

std::vector<float> Checkpoint::vec(const std::string& name, int64_t n) const {
    return to_f32(expect(name, n));
}

namespace {
// A GGUF F16/quantized weight [n][k] used in place; false when it must be packed instead.
bool in_place(const Checkpoint& ck, const TensorView& t, int64_t n, int64_t k, kernels::Weight* w) {
    if (ck.container() != "gguf" || t.type == DType::F32 || t.type == DType::BF16) return false;
    const auto& info = dtype_info(t.type);
    if (k % info.block_size != 0) return false;
    w->type = t.type;
    w->n_cols = k;
    w->n_rows = n;
    w->row_bytes = dtype_row_bytes(t.type, k);
    w->data = t.data;
    return true;
}
}  // namespace

Linear Checkpoint::linear_weight(const std::string& name, int64_t in, int64_t out) const {
    Linear l;
    const auto& t = expect(name, out * in);
    if (!in_place(*this, t, out, in, &l.q)) {
        const bool f16 = t.type == DType::F16 || t.type == DType::BF16;
        const std::vector<float> w = to_f32(t);
        l.w = pack_weights(w.data(), out, in, f16);
    }
    return l;
}

Linear Checkpoint::linear(const std::string& p, int64_t in, int64_t out, bool bias) const {
    Linear l = linear_weight(p + ".weight", in, out);
    if (bias) l.b = vec(p + ".bias", out);
    return l;
}

Conv2d Checkpoint::conv(const std::string& p, int in, int out, int k) const {
    Conv2d c;
    c.in = in;
    c.out = out;
    c.k = k;
    const int64_t K = static_cast<int64_t>(in) * k * k;
    const auto& t = expect(p + ".weight", out * K);
    if (!in_place(*this, t, out, K, &c.q)) {
        std::vector<float> w = to_f32(t);
        for (auto& v : w) v = round_fp16(v);
        c.w = pack_weights(w.data(), out, K, /*round_in=*/true);
    }
    c.b = vec(p + ".bias", out);
    return c;
}

Norm Checkpoint::norm(const std::string& p, int64_t n) const {
    return Norm{vec(p + ".weight", n), vec(p + ".bias", n)};
}

void Checkpoint::release(const std::string& prefix) const {
    static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    for (const TensorView& t : tensors_) {
        if (t.name.compare(0, prefix.size(), prefix) != 0 || t.n_bytes < page) continue;
        // Whole pages inside the tensor only (its neighbours may belong to a live component).
        const uintptr_t b = (reinterpret_cast<uintptr_t>(t.data) + page - 1) & ~(page - 1);
        const uintptr_t e = (reinterpret_cast<uintptr_t>(t.data) + t.n_bytes) & ~(page - 1);
        if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
    }
}

std::string Checkpoint::weight_type() const {
    // The type holding most of the UNet's bytes (SDXL has no attention at level 0 and keeps its
    // 4-channel convs F16, so no single tensor name speaks for every variant).
    std::map<DType, uint64_t> bytes;
    for (const TensorView& t : tensors_)
        if (t.name.rfind("model.diffusion_model.", 0) == 0) bytes[t.type] += t.n_bytes;
    if (bytes.empty()) return "?";
    const auto top = std::max_element(bytes.begin(), bytes.end(), [](const auto& a, const auto& b) {
        return a.second < b.second;
    });
    std::string s = dtype_name(top->first);
    for (auto& ch : s) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return s;
}

}  // namespace duan::diffusion
