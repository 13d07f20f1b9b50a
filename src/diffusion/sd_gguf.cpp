#include "diffusion/sd_gguf.h"

#include <vector>

#include "core/error.h"
#include "diffusion/weights.h"
#include "format/gguf_writer.h"
#include "kernels/kernels.h"

namespace duan::diffusion {

namespace {
bool ends_with(const std::string& s, const std::string& e) {
    return s.size() >= e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0;
}
bool contains(const std::string& s, const char* e) {
    return s.find(e) != std::string::npos;
}
}  // namespace

DType sd_tensor_type(const std::string& name, const std::vector<int64_t>& shape, DType src,
                     DType target, bool quantize_convs) {
    const DType keep = src == DType::F16 ? DType::F16 : DType::F32;
    if (target == DType::F32) return DType::F32;
    if (contains(name, "embedding")) return DType::F32;
    if (shape.size() <= 1 || ends_with(name, ".bias") || contains(name, "time_embed.") ||
        contains(name, "label_emb."))
        return keep;
    if (shape.size() == 4) {
        const int64_t K = shape[1] * shape[2] * shape[3];
        if (quantize_convs && target != DType::F16 &&
            name.compare(0, 22, "model.diffusion_model.") == 0 && shape[0] >= 32 &&
            K % dtype_info(target).block_size == 0)
            return target;
        return DType::F16;
    }
    if (shape.size() != 2) return DType::F16;
    const int64_t row = shape.back();
    if (row % dtype_info(target).block_size != 0) return DType::F16;
    return target;
}

void write_sd_gguf(const std::string& out, const std::vector<SdTensorSource>& tensors,
                   const std::function<std::vector<float>(size_t)>& data, const SdConvertOptions& o,
                   const std::function<void(gguf::Metadata&)>& meta) {
    if (o.type != DType::F32 && o.type != DType::F16 && !kernels::can_quantize(o.type))
        fail("cannot write Stable Diffusion weights as ", dtype_name(o.type));
    gguf::Writer w(out);
    w.meta().set("general.architecture", gguf::Value::from_string("stable-diffusion"));
    w.meta().set("duan.sd.weight_type", gguf::Value::from_string(dtype_name(o.type)));
    if (meta) meta(w.meta());
    std::vector<DType> types;
    for (const SdTensorSource& t : tensors) {
        const DType ty = sd_tensor_type(t.name, t.shape, t.type, o.type, o.quantize_convs);
        types.push_back(ty);
        std::vector<int64_t> ne(t.shape.rbegin(), t.shape.rend());
        if (ne.size() == 4 && dtype_info(ty).block_size > 1)  // a quantized conv: im2col rows
            ne = {ne[0] * ne[1] * ne[2], ne[3]};
        if (ne.empty()) ne = {1};
        w.add_tensor(t.name, ty, ne);
    }
    w.begin_data();
    std::vector<uint8_t> buf;
    for (size_t i = 0; i < tensors.size(); ++i) {
        const SdTensorSource& t = tensors[i];
        const std::vector<float> f = data(i);
        const int64_t n = t.numel();
        if (static_cast<int64_t>(f.size()) != n)
            fail("tensor ", t.name, ": ", f.size(), " values for ", n, " elements");
        int64_t row = t.shape.empty() ? 1 : t.shape.back();
        if (t.shape.size() == 4 && dtype_info(types[i]).block_size > 1) row = n / t.shape[0];
        const size_t rb = dtype_row_bytes(types[i], row);
        buf.resize(rb * static_cast<size_t>(n / row));
        for (int64_t r = 0; r < n / row; ++r)
            kernels::quantize_row(types[i], f.data() + r * row, buf.data() + r * rb, row);
        w.write_tensor_data(t.name, buf.data(), buf.size());
        if (o.log) o.log(t.name + " " + dtype_name(t.type) + " -> " + dtype_name(types[i]));
    }
    w.finish();
}

void convert_sd_to_gguf(const std::string& in, const std::string& out, const SdConvertOptions& o) {
    const Checkpoint ck(in);
    std::vector<SdTensorSource> src;
    for (const TensorView& t : ck.tensors()) src.push_back({t.name, t.shape, t.type});
    write_sd_gguf(
        out, src, [&](size_t i) { return ck.to_f32(ck.tensors()[i]); }, o,
        [&](gguf::Metadata& m) {
            m.set("general.name", gguf::Value::from_string(in));
            m.set("duan.sd.source_container", gguf::Value::from_string(ck.container()));
        });
}

}  // namespace duan::diffusion
