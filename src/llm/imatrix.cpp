#include "llm/imatrix.h"

#include "core/error.h"
#include "format/gguf_writer.h"

namespace duan {

ImatrixCollector::ImatrixCollector(const Model& model) {
    for (const auto& t : model.file().tensors())
        if (t.name != "output.weight" && t.name != "token_embd.weight") names_[t.data] = t.name;
}

void ImatrixCollector::attach(Context& ctx) {
    ctx.set_matmul_observer(
        [this](const kernels::Weight& W, const float* x, int64_t M) { observe(W, x, M); });
}

void ImatrixCollector::observe(const kernels::Weight& W, const float* x, int64_t M) {
    auto it = names_.find(W.data);
    if (it == names_.end()) return;  // the output matrix
    Stat& s = stats_[it->second];
    const int64_t K = W.n_cols;
    if (s.sum2.empty()) s.sum2.assign(K, 0.0);
    for (int64_t m = 0; m < M; ++m) {
        const float* r = x + m * K;
        for (int64_t j = 0; j < K; ++j) s.sum2[j] += double(r[j]) * r[j];
    }
    s.count += M;
}

ImatrixMap ImatrixCollector::values() const {
    ImatrixMap m;
    for (const auto& [name, s] : stats_) {
        std::vector<float> v(s.sum2.size());
        for (size_t j = 0; j < v.size(); ++j)
            v[j] = s.count ? static_cast<float>(s.sum2[j] / s.count) : 0.f;
        m[name] = std::move(v);
    }
    return m;
}

void ImatrixCollector::save(const std::string& path, const std::vector<std::string>& datasets,
                            int chunk_count, int chunk_size) const {
    gguf::Writer w(path);
    w.meta().set("general.type", gguf::Value::from_string("imatrix"));
    w.meta().set("imatrix.datasets", gguf::Value::from_strings(datasets));
    w.meta().set("imatrix.chunk_count", gguf::Value::from_u32(static_cast<uint32_t>(chunk_count)));
    w.meta().set("imatrix.chunk_size", gguf::Value::from_u32(static_cast<uint32_t>(chunk_size)));
    for (const auto& [name, s] : stats_) {
        w.add_tensor(name + ".counts", DType::F32, {1, 1});
        w.add_tensor(name + ".in_sum2", DType::F32, {static_cast<int64_t>(s.sum2.size()), 1});
    }
    w.begin_data();
    for (const auto& [name, s] : stats_) {
        const float c = static_cast<float>(s.count);
        w.write_tensor_data(name + ".counts", &c, 4);
        std::vector<float> v(s.sum2.begin(), s.sum2.end());
        w.write_tensor_data(name + ".in_sum2", v.data(), v.size() * 4);
    }
    w.finish();
}

ImatrixMap load_imatrix(const std::string& path) {
    auto f = gguf::File::open(path);
    ImatrixMap m;
    const std::string suffix = ".in_sum2";
    for (const auto& t : f->tensors()) {
        if (t.name.size() <= suffix.size() ||
            t.name.compare(t.name.size() - suffix.size(), suffix.size(), suffix) != 0)
            continue;
        const std::string base = t.name.substr(0, t.name.size() - suffix.size());
        const gguf::TensorInfo* c = f->find_tensor(base + ".counts");
        if (!c) fail(path, ": tensor ", t.name, " has no matching ", base, ".counts");
        if (t.type != DType::F32 || c->type != DType::F32)
            fail(path, ": tensor ", t.name, ": imatrix tensors must be F32");
        const int64_t n_mat = t.ne.size() > 1 ? t.n_elements() / t.ne[0] : 1;
        if (c->n_elements() != n_mat)
            fail(path, ": tensor ", base, ".counts has ", c->n_elements(), " values, expected ",
                 n_mat);
        const float* s = reinterpret_cast<const float*>(t.data);
        const float* n = reinterpret_cast<const float*>(c->data);
        std::vector<float> v(t.n_elements());
        for (int64_t e = 0; e < n_mat; ++e)
            for (int64_t j = 0; j < t.ne[0]; ++j) {
                const float cnt = n[e];
                v[e * t.ne[0] + j] = cnt > 0 ? s[e * t.ne[0] + j] / cnt : 0.f;
            }
        m[base] = std::move(v);
    }
    if (m.empty()) fail(path, ": no imatrix data (no *.in_sum2 tensors)");
    return m;
}

}  // namespace duan
