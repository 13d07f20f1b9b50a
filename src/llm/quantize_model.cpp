#include "llm/quantize_model.h"

#include <algorithm>
#include <cctype>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "core/error.h"
#include "core/thread_pool.h"
#include "format/gguf_writer.h"
#include "kernels/kernels.h"

namespace duan {

namespace {

struct FileTypeEntry {
    FileType ft;
    const char* name;
    DType base;
};

const FileTypeEntry kFileTypes[] = {
    {FileType::Q8_0, "Q8_0", DType::Q8_0},     {FileType::Q4_0, "Q4_0", DType::Q4_0},
    {FileType::Q4_1, "Q4_1", DType::Q4_1},     {FileType::Q5_0, "Q5_0", DType::Q5_0},
    {FileType::Q5_1, "Q5_1", DType::Q5_1},     {FileType::Q2_K, "Q2_K", DType::Q2_K},
    {FileType::Q3_K_S, "Q3_K_S", DType::Q3_K}, {FileType::Q3_K_M, "Q3_K_M", DType::Q3_K},
    {FileType::Q3_K_L, "Q3_K_L", DType::Q3_K}, {FileType::Q4_K_S, "Q4_K_S", DType::Q4_K},
    {FileType::Q4_K_M, "Q4_K_M", DType::Q4_K}, {FileType::Q5_K_S, "Q5_K_S", DType::Q5_K},
    {FileType::Q5_K_M, "Q5_K_M", DType::Q5_K}, {FileType::Q6_K, "Q6_K", DType::Q6_K},
    {FileType::MOSTLY_F16, "F16", DType::F16}, {FileType::MOSTLY_BF16, "BF16", DType::BF16},
    {FileType::ALL_F32, "F32", DType::F32},
};

const FileTypeEntry& entry(FileType t) {
    for (const auto& e : kFileTypes)
        if (e.ft == t) return e;
    fail("unknown file type id ", static_cast<uint32_t>(t));
}

bool is_quantized(DType t) {
    return dtype_info(t).block_size > 1;
}

// Drops a processed tensor's pages from the mapping (they are file-backed and clean, so this only
// releases memory): keeps the resident set at about one tensor instead of the whole input file.
void release_pages(const uint8_t* p, size_t n) {
#if defined(__unix__) || defined(__APPLE__)
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);
    const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + n) & ~(page - 1);
    if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
#else
    (void)p;
    (void)n;
#endif
}

// Tensor categories that the mixes treat specially (by name, as the reference does).
enum class Cat {
    TokenEmbd,
    Output,
    AttnQ,
    AttnK,
    AttnV,
    AttnQKV,
    AttnOut,
    FfnUp,
    FfnGate,
    FfnDown,
    Other
};

bool contains(const std::string& s, const char* sub) {
    return s.find(sub) != std::string::npos;
}

Cat category(const std::string& n) {
    if (n == "output.weight") return Cat::Output;
    if (n == "token_embd.weight") return Cat::TokenEmbd;
    if (contains(n, "attn_qkv.weight")) return Cat::AttnQKV;
    if (contains(n, "attn_v.weight")) return Cat::AttnV;
    if (contains(n, "attn_k.weight")) return Cat::AttnK;
    if (contains(n, "attn_q.weight")) return Cat::AttnQ;
    if (contains(n, "attn_output.weight")) return Cat::AttnOut;
    if (contains(n, "ffn_up")) return Cat::FfnUp;
    if (contains(n, "ffn_gate")) return Cat::FfnGate;
    if (contains(n, "ffn_down")) return Cat::FfnDown;
    return Cat::Other;
}

// Only matrices named "*weight" that are not norms (or tiny special tensors) are quantized.
bool allows_quantization(const gguf::TensorInfo& t) {
    int n_dims = 1;
    for (size_t i = 1; i < t.ne.size(); ++i)
        if (t.ne[i] > 1) n_dims = static_cast<int>(i) + 1;
    if (n_dims < 2) return false;
    const std::string& n = t.name;
    if (n.size() < 6 || n.compare(n.size() - 6, 6, "weight") != 0) return false;
    if (contains(n, "_norm.weight") || contains(n, "ffn_gate_inp.weight")) return false;
    if (n == "position_embd.weight" || n == "token_types.weight") return false;
    return true;
}

// The layer index of "blk.N.…", -1 for global tensors (used for ordering only).
int layer_of(const std::string& n) {
    if (n.rfind("blk.", 0) != 0) return -1;
    int v = 0;
    size_t i = 4;
    if (i >= n.size() || !std::isdigit(static_cast<unsigned char>(n[i]))) return -1;
    for (; i < n.size() && std::isdigit(static_cast<unsigned char>(n[i])); ++i)
        v = v * 10 + (n[i] - '0');
    return v;
}

struct MixState {
    std::string arch;
    int n_layer = 0, n_head = 0, n_head_kv = 0;
    bool tied = true, has_imatrix = false, is_70b = false;
    int n_attn_v = 0, i_attn_v = 0, i_ffn_down = 0;
    int n_gqa() const { return n_head_kv > 0 ? n_head / n_head_kv : 1; }
};

// Layers in the first and last eighth, and every third one in between, get more bits.
bool use_more_bits(int i, int n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

// The mix's choice for one quantizable tensor (before the block-size fallback).
DType mix_type(MixState& s, FileType ft, Cat cat, DType t, int64_t ne0) {
    using F = FileType;
    if (cat == Cat::Output || (s.tied && cat == Cat::TokenEmbd)) {
        if (s.arch == "falcon" || ne0 % dtype_info(t).block_size != 0) return DType::Q8_0;
        return t != DType::Q8_0 ? DType::Q6_K : t;
    }
    if (cat == Cat::TokenEmbd) return t;
    if (cat == Cat::AttnV || cat == Cat::AttnQKV) {
        if (ft == F::Q2_K)
            t = s.n_gqa() >= 4 ? DType::Q4_K : DType::Q3_K;
        else if (ft == F::Q3_K_M)
            t = s.i_attn_v < 2 ? DType::Q5_K : DType::Q4_K;
        else if (ft == F::Q3_K_L)
            t = DType::Q5_K;
        else if ((ft == F::Q4_K_M || ft == F::Q5_K_M) && use_more_bits(s.i_attn_v, s.n_attn_v))
            t = DType::Q6_K;
        else if (ft == F::Q4_K_S && s.i_attn_v < 4)
            t = DType::Q5_K;
        if (s.is_70b && (t == DType::Q3_K || t == DType::Q4_K)) t = DType::Q5_K;
        ++s.i_attn_v;
        return t;
    }
    if (cat == Cat::FfnDown) {
        const int i = s.i_ffn_down++, n = s.n_layer;
        const bool falcon = s.arch == "falcon";
        if (ft == F::Q2_K)
            t = DType::Q3_K;
        else if (ft == F::Q3_K_M)
            t = i < n / 16                         ? DType::Q5_K
                : (!falcon || use_more_bits(i, n)) ? DType::Q4_K
                                                   : DType::Q3_K;
        else if (ft == F::Q3_K_L)
            t = falcon ? DType::Q4_K : DType::Q5_K;
        else if (ft == F::Q4_K_M) {
            if (falcon)
                t = i < n / 16 ? DType::Q6_K : use_more_bits(i, n) ? DType::Q5_K : DType::Q4_K;
            else if (use_more_bits(i, n))
                t = DType::Q6_K;
        } else if (ft == F::Q5_K_M && use_more_bits(i, n))
            t = DType::Q6_K;
        else if (ft == F::Q4_K_S && !falcon && i < n / 8)
            t = DType::Q5_K;
        else if ((ft == F::Q4_0 || ft == F::Q5_0) && s.has_imatrix && i < n / 8)
            // with an imatrix the first ffn_down layers are guarded with the _1 variant
            t = ft == F::Q4_0 ? DType::Q4_1 : DType::Q5_1;
        return t;
    }
    if (cat == Cat::AttnOut) {
        if (s.arch != "falcon") {
            if (ft == F::Q2_K)
                t = DType::Q3_K;
            else if (ft == F::Q3_K_M)
                t = DType::Q4_K;
            else if (ft == F::Q3_K_L)
                t = DType::Q5_K;
        } else if (ft == F::Q3_K_L) {
            t = DType::Q4_K;
        }
        return t;
    }
    return t;
}

// A type whose block fits rows of ne0 elements; "" note when `t` already fits.
DType fallback(DType t, int64_t ne0, std::string* note) {
    if (ne0 % dtype_info(t).block_size == 0) return t;
    DType r;
    switch (t) {
        case DType::Q2_K:
        case DType::Q3_K:
            r = DType::Q4_0;
            break;
        case DType::Q4_K:
            r = DType::Q5_0;
            break;
        case DType::Q5_K:
            r = DType::Q5_1;
            break;
        case DType::Q6_K:
            r = DType::Q8_0;
            break;
        default:
            r = DType::F16;
            break;  // the legacy 32-blocks: nothing smaller fits
    }
    if (ne0 % dtype_info(r).block_size != 0) r = DType::F16;
    char buf[200];
    std::snprintf(buf, sizeof buf,
                  "ncols %" PRId64 " not divisible by %" PRId64
                  " (required for %s) -> falling back to %s",
                  ne0, dtype_info(t).block_size, dtype_name(t), dtype_name(r));
    *note = buf;
    return r;
}

MixState mix_state(const gguf::File& in, const QuantizeOptions& o) {
    MixState s;
    const auto& m = in.meta();
    s.arch = m.get_string("general.architecture").value_or("");
    auto u32 = [&](const std::string& k) -> int {
        try {
            return static_cast<int>(m.get_u32(s.arch + "." + k).value_or(0));
        } catch (const Error&) {
            return 0;  // e.g. a per-layer array: the mixes only need the common value
        }
    };
    s.n_layer = u32("block_count");
    s.n_head = u32("attention.head_count");
    s.n_head_kv = u32("attention.head_count_kv");
    if (s.n_head_kv == 0) s.n_head_kv = s.n_head;
    s.has_imatrix = o.imatrix != nullptr;
    s.is_70b = s.arch == "llama" && s.n_layer == 80 && s.n_head != s.n_head_kv;
    for (const auto& t : in.tensors()) {
        Cat c = category(t.name);
        if (c == Cat::AttnV || c == Cat::AttnQKV) ++s.n_attn_v;
        if (c == Cat::Output) s.tied = false;
    }
    return s;
}

}  // namespace

std::optional<FileType> file_type_from_name(std::string_view name) {
    std::string up(name);
    for (char& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (up == "MOSTLY_F16") up = "F16";
    if (up == "MOSTLY_BF16") up = "BF16";
    for (const auto& e : kFileTypes)
        if (up == e.name) return e.ft;
    return std::nullopt;
}

const char* file_type_name(FileType t) {
    return entry(t).name;
}
DType file_type_base(FileType t) {
    return entry(t).base;
}

std::string file_type_list() {
    std::string s;
    for (const auto& e : kFileTypes) {
        if (!s.empty()) s += ", ";
        s += e.name;
    }
    return s;
}

std::vector<TensorPlan> plan_quantization(const gguf::File& in, const QuantizeOptions& o) {
    // The reference's order: global tensors first, then by layer; by name within each group.
    std::vector<const gguf::TensorInfo*> order;
    for (const auto& t : in.tensors()) order.push_back(&t);
    std::stable_sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
        int la = layer_of(a->name), lb = layer_of(b->name);
        if (la != lb) return la < lb;
        return a->name < b->name;
    });

    MixState s = mix_state(in, o);
    const DType base = file_type_base(o.ftype);
    std::vector<TensorPlan> plan;
    for (const auto* t : order) {
        TensorPlan p;
        p.name = t->name;
        p.from = p.to = t->type;
        p.ne = t->ne;
        if (allows_quantization(*t) && o.ftype != FileType::ALL_F32) {
            DType want = base;
            if (is_quantized(base)) {
                if (!o.pure) want = mix_type(s, o.ftype, category(t->name), base, t->ne[0]);
                want = fallback(want, t->ne[0], &p.note);
            }
            p.to = want;
        } else if (allows_quantization(*t)) {
            p.to = DType::F32;
        }
        plan.push_back(std::move(p));
    }
    return plan;
}

QuantizeResult quantize_model(const std::string& in_path, const std::string& out_path,
                              const QuantizeOptions& o) {
    auto in = gguf::File::open(in_path);
    auto log = [&](const std::string& line) {
        if (o.log) o.log(line);
    };
    if (o.imatrix)
        for (const auto& [name, v] : *o.imatrix)
            for (float f : v)
                if (!std::isfinite(f)) fail("imatrix entry ", name, " has a non-finite value");

    const std::vector<TensorPlan> plan = plan_quantization(*in, o);

    gguf::Writer w(out_path, in->alignment());
    for (const auto& [k, v] : in->meta().items()) w.meta().set(k, v);
    for (const char* k : {"split.no", "split.count", "split.tensors.count"}) w.meta().erase(k);
    // The reference appends these two (removing any earlier copy), so they end the metadata.
    w.meta().erase("general.quantization_version");
    w.meta().set("general.quantization_version", gguf::Value::from_u32(2));
    w.meta().erase("general.file_type");
    w.meta().set("general.file_type", gguf::Value::from_u32(static_cast<uint32_t>(o.ftype)));

    for (const auto& p : plan) {
        if (p.from != p.to) {
            if (!kernels::can_dequantize(p.from))
                fail(in_path, ": tensor ", p.name, ": cannot convert from type ",
                     dtype_name(p.from));
            if (is_quantized(p.from) && !o.allow_requantize)
                fail(in_path, ": tensor ", p.name, " is already ", dtype_name(p.from),
                     "; requantizing loses accuracy (pass --allow-requantize to do it anyway)");
            if (!kernels::can_quantize(p.to))
                fail("no quantizer for type ", dtype_name(p.to), " (tensor ", p.name, ")");
        }
        w.add_tensor(p.name, p.to, p.ne);
    }
    w.begin_data();

    ThreadPool pool(o.n_threads > 0 ? o.n_threads : default_thread_count());
    QuantizeResult res;
    std::vector<uint8_t> out;
    const size_t n_total = plan.size();
    for (size_t idx = 0; idx < n_total; ++idx) {
        const TensorPlan& p = plan[idx];
        const gguf::TensorInfo& t = *in->find_tensor(p.name);
        res.bytes_in += t.n_bytes;
        res.n_elements += t.n_elements();
        char head[256];
        std::snprintf(head, sizeof head, "[%4zu/%4zu] %-36s - %-14s %5s", idx + 1, n_total,
                      p.name.c_str(),
                      ("[" +
                       [&] {
                           std::string s;
                           for (size_t i = 0; i < p.ne.size(); ++i)
                               s += (i ? ", " : "") + std::to_string(p.ne[i]);
                           return s;
                       }() +
                       "]")
                          .c_str(),
                      dtype_name(p.from));
        if (!p.note.empty()) {
            ++res.n_fallback;
            log(std::string("warning: ") + p.name + ": " + p.note);
        }
        if (p.from == p.to) {
            w.write_tensor_data(p.name, t.data, t.n_bytes);
            release_pages(t.data, t.n_bytes);
            res.bytes_out += t.n_bytes;
            log(std::string(head) + " copied");
            continue;
        }
        const int64_t ne0 = t.ne[0];
        const int64_t n_rows = t.n_rows();
        const int64_t ne1 = t.ne.size() > 1 ? t.ne[1] : 1;
        const size_t in_row = dtype_row_bytes(t.type, ne0);
        const size_t out_row = dtype_row_bytes(p.to, ne0);

        // Importance weights: one per column (per expert matrix for 3-D tensors).
        const float* imat = nullptr;
        int64_t imat_per = 0;
        if (o.imatrix && is_quantized(p.to)) {
            auto it = o.imatrix->find(p.name);
            if (it == o.imatrix->end()) {
                log("note: no imatrix data for " + p.name);
            } else if (it->second.size() == static_cast<size_t>(ne0)) {
                imat = it->second.data();
            } else if (ne1 > 0 && it->second.size() == static_cast<size_t>(n_rows / ne1 * ne0)) {
                imat = it->second.data();
                imat_per = ne1;
            } else if (p.name != "token_embd.weight") {
                fail("imatrix entry ", p.name, " has ", it->second.size(),
                     " values; the tensor has ", ne0, " columns");
            }
        }

        out.resize(static_cast<size_t>(n_rows) * out_row);
        pool.parallel_for(n_rows, [&](int64_t b, int64_t e) {
            std::vector<float> buf(t.type == DType::F32 ? 0 : ne0);
            for (int64_t r = b; r < e; ++r) {
                const uint8_t* src = t.data + r * in_row;
                const float* row;
                if (t.type == DType::F32) {
                    row = reinterpret_cast<const float*>(src);
                } else {
                    kernels::dequantize_row(t.type, src, buf.data(), ne0);
                    row = buf.data();
                }
                uint8_t* dst = out.data() + r * out_row;
                if (imat) {
                    const float* im = imat_per ? imat + (r / imat_per) * ne0 : imat;
                    kernels::quantize_row_weighted(p.to, row, dst, ne0, im);
                } else {
                    kernels::quantize_row(p.to, row, dst, ne0);
                }
            }
        });
        w.write_tensor_data(p.name, out.data(), out.size());
        release_pages(t.data, t.n_bytes);
        res.bytes_out += out.size();
        char tail[128];
        std::snprintf(tail, sizeof tail, " -> %-6s %8.3f MiB -> %8.3f MiB%s", dtype_name(p.to),
                      t.n_bytes / 1048576.0, out.size() / 1048576.0, imat ? " (imatrix)" : "");
        log(std::string(head) + tail);
    }
    w.finish();
    char sum[200];
    std::snprintf(
        sum, sizeof sum, "model size %.2f MiB (%.2f BPW) -> %.2f MiB (%.2f BPW)%s",
        res.bytes_in / 1048576.0, 8.0 * res.bytes_in / std::max<int64_t>(1, res.n_elements),
        res.bytes_out / 1048576.0, res.bits_per_weight(),
        res.n_fallback
            ? (", " + std::to_string(res.n_fallback) + " tensor(s) needed a fallback type").c_str()
            : "");
    log(sum);
    return res;
}

}  // namespace duan
