#include "llm/model.h"

#include "core/error.h"
#include "kernels/kernels.h"
#include "llm/chat_template.h"

namespace duan {

extern const ArchLoader kArchLlama;
extern const ArchLoader kArchQwen2;
extern const ArchLoader kArchQwen3;

const ArchLoader* find_arch(const std::string& name) {
    static const ArchLoader* const kAll[] = {&kArchLlama, &kArchQwen2, &kArchQwen3};
    for (const ArchLoader* a : kAll)
        if (name == a->name) return a;
    return nullptr;
}

namespace {
std::string shape_str(const std::vector<int64_t>& ne) {
    std::string s = "[";
    for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
    return s + "]";
}
}  // namespace

kernels::Weight ArchLoader::matrix(Model& m, const std::string& name, int64_t rows, int64_t cols,
                                   bool optional) {
    const gguf::TensorInfo* t = m.file_->find_tensor(name);
    if (!t) {
        if (optional) return {};
        fail(m.file_->path(), ": missing tensor '", name, "'");
    }
    if (t->ne.size() > 2 && t->n_elements() != t->ne[0] * t->ne[1])
        fail(m.file_->path(), ": tensor '", name, "' has shape ", shape_str(t->ne),
             ", expected a matrix [", cols, ", ", rows, "]");
    const int64_t ne1 = t->ne.size() > 1 ? t->ne[1] : 1;
    if (t->ne[0] != cols || ne1 != rows)
        fail(m.file_->path(), ": tensor '", name, "' has shape ", shape_str(t->ne), ", expected [",
             cols, ", ", rows, "]");
    if (!kernels::can_dequantize(t->type))
        fail(m.file_->path(), ": tensor '", name, "' has type ", dtype_name(t->type),
             ", which duan cannot compute with");
    kernels::Weight w;
    w.type = t->type;
    w.n_cols = cols;
    w.n_rows = rows;
    w.row_bytes = dtype_row_bytes(t->type, cols);
    w.data = t->data;
    return w;
}

const float* ArchLoader::vector(Model& m, const std::string& name, int64_t n, bool optional) {
    const gguf::TensorInfo* t = m.file_->find_tensor(name);
    if (!t) {
        if (optional) return nullptr;
        fail(m.file_->path(), ": missing tensor '", name, "'");
    }
    if (t->n_elements() != n)
        fail(m.file_->path(), ": tensor '", name, "' has shape ", shape_str(t->ne), ", expected [",
             n, "]");
    if (t->type != DType::F32)
        fail(m.file_->path(), ": tensor '", name, "' has type ", dtype_name(t->type),
             ", expected f32");
    if (reinterpret_cast<uintptr_t>(t->data) % alignof(float) != 0)
        fail(m.file_->path(), ": tensor '", name, "' data is not 4-byte aligned");
    return reinterpret_cast<const float*>(t->data);
}

LayerWeights ArchLoader::llama_layer(Model& m, int il) {
    const HParams& hp = m.hp_;
    const std::string p = "blk." + std::to_string(il) + ".";
    LayerWeights l;
    l.attn_norm = vector(m, p + "attn_norm.weight", hp.n_embd);
    l.wq = matrix(m, p + "attn_q.weight", hp.q_dim(), hp.n_embd);
    l.wk = matrix(m, p + "attn_k.weight", hp.kv_dim(), hp.n_embd);
    l.wv = matrix(m, p + "attn_v.weight", hp.kv_dim(), hp.n_embd);
    l.wo = matrix(m, p + "attn_output.weight", hp.n_embd, hp.q_dim());
    l.ffn_norm = vector(m, p + "ffn_norm.weight", hp.n_embd);
    l.w_gate = matrix(m, p + "ffn_gate.weight", hp.n_ff, hp.n_embd);
    l.w_up = matrix(m, p + "ffn_up.weight", hp.n_ff, hp.n_embd);
    l.w_down = matrix(m, p + "ffn_down.weight", hp.n_embd, hp.n_ff);
    return l;
}

void ArchLoader::llama_globals(Model& m) {
    HParams& hp = m.hp_;
    const gguf::TensorInfo* te = m.file_->find_tensor("token_embd.weight");
    if (!te) fail(m.file_->path(), ": missing tensor 'token_embd.weight'");
    if (te->ne.size() < 2) fail(m.file_->path(), ": tensor 'token_embd.weight' must be 2-D");
    hp.n_vocab = te->ne[1];
    m.w_.tok_embd = matrix(m, "token_embd.weight", hp.n_vocab, hp.n_embd);
    m.w_.output_norm = vector(m, "output_norm.weight", hp.n_embd);
    m.w_.output = matrix(m, "output.weight", hp.n_vocab, hp.n_embd, /*optional=*/true);
    if (!m.w_.output.data) m.w_.output = m.w_.tok_embd;  // tied embeddings
    m.w_.rope_freqs = vector(m, "rope_freqs.weight", hp.n_rot / 2, /*optional=*/true);
}

std::unique_ptr<Model> Model::load(const std::string& path) {
    auto m = std::unique_ptr<Model>(new Model());
    m->file_ = gguf::File::open(path);
    const auto& meta = m->file_->meta();
    const std::string arch = meta.require_string("general.architecture", path);
    const ArchLoader* loader = find_arch(arch);
    if (!loader)
        fail(path, ": architecture '", arch, "' is not supported (supported: llama, qwen2, qwen3)");
    loader->load(*m);
    m->tok_ = Tokenizer::from_gguf(meta, path);
    if (m->tok_->n_vocab() < m->hp_.n_vocab)
        fail(path, ": tokenizer has ", m->tok_->n_vocab(), " tokens but token_embd has ",
             m->hp_.n_vocab, " rows");
    m->chat_template_ = meta.get_string("tokenizer.chat_template").value_or("");
    return m;
}

std::string Model::chat_template_name() const {
    if (chat_template_.empty()) return "";
    return detect_chat_template(chat_template_).value_or("");
}

uint64_t Model::weight_bytes() const {
    uint64_t n = 0;
    for (const auto& t : file_->tensors()) n += t.n_bytes;
    return n;
}

}  // namespace duan
