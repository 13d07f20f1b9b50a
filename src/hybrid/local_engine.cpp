#include "hybrid/local_engine.h"

#include <algorithm>

#include "core/error.h"
#include "llm/chat_template.h"

namespace duan::hybrid {

struct LocalEngine::Seq {
    std::vector<int32_t> prompt;
    size_t consumed = 0;  // prompt tokens evaluated
    int n_past = 0;       // positions cached
    TokenId last = -1;    // sampled, not yet evaluated
    std::unique_ptr<Sampler> sampler;
    std::unique_ptr<StreamDecoder> decoder;
};

LocalEngine::LocalEngine(const Model& model, LocalEngineOptions opt)
    : model_(model), opt_(std::move(opt)) {
    opt_.n_slots = std::max(1, opt_.n_slots);
    opt_.prefill_chunk = std::max(1, opt_.prefill_chunk);
    ContextOptions co;
    co.n_ctx = opt_.n_ctx;
    co.n_threads = opt_.n_threads;
    co.n_seq = opt_.n_slots;
    ctx_ = std::make_unique<Context>(model_, co);
    template_ = opt_.chat_template.empty() ? model_.chat_template_name() : opt_.chat_template;
    // No recognised template: ChatML when the vocabulary has its markers, else plain text.
    if (template_.empty() && model_.tokenizer().find("<|im_start|>") >= 0) template_ = "chatml";
    if (!template_.empty())
        (void)apply_chat_template(template_, {{"user", "x"}}, true);  // validates the name
    if (opt_.model_id.empty()) opt_.model_id = "local";
    for (int i = 0; i < opt_.n_slots; ++i) seqs_.push_back(std::make_unique<Seq>());
}

LocalEngine::~LocalEngine() = default;

int LocalEngine::n_ctx() const {
    return ctx_->n_ctx();
}

std::string LocalEngine::render_chat(const GenRequest& req) const {
    if (template_.empty()) {
        std::string s;
        for (const auto& m : req.messages) s += m.role + ": " + m.content + "\n";
        return s + "assistant:";
    }
    std::vector<duan::ChatMessage> msgs;
    for (const auto& m : req.messages) msgs.push_back({m.role, m.content});
    try {
        return apply_chat_template(template_, msgs, true);
    } catch (const Error& e) {
        throw bad_request(std::string("chat template: ") + e.what(), "messages");
    }
}

std::vector<int32_t> LocalEngine::tokenize(const GenRequest& req) const {
    const Tokenizer& tok = model_.tokenizer();
    // Chat: control-token texts of the template become tokens. Plain completions: the client's
    // text is only text, so "<|im_end|>" typed by a user cannot forge a turn boundary.
    if (req.chat) return tok.encode(render_chat(req), tok.add_bos(), /*parse_special=*/true);
    return tok.encode(req.prompt, tok.add_bos(), /*parse_special=*/false);
}

void LocalEngine::begin(int slot, const GenRequest& req, std::vector<int32_t> prompt) {
    Seq& s = *seqs_.at(static_cast<size_t>(slot));
    ctx_->clear(slot);
    s = Seq{};
    SamplingParams sp;
    sp.temperature = req.temperature;  // OpenAI semantics: no top-k / min-p unless asked
    sp.top_p = req.top_p;
    sp.top_k = 0;
    sp.min_p = 0;
    sp.seed = req.seed ? *req.seed : kRandomSeed;
    const Tokenizer& tok = model_.tokenizer();
    std::vector<TokenId> eog;
    for (TokenId id : {tok.eos(), tok.eot()})
        if (id >= 0) eog.push_back(id);
    s.sampler = std::make_unique<Sampler>(sp, static_cast<int>(model_.hparams().n_vocab), eog);
    for (TokenId t : prompt) s.sampler->accept(t);
    s.decoder = std::make_unique<StreamDecoder>(tok);
    s.prompt = std::move(prompt);
}

void LocalEngine::end(int slot) {
    ctx_->clear(slot);
    Seq& s = *seqs_.at(static_cast<size_t>(slot));
    s.sampler.reset();
    s.decoder.reset();
    s.prompt.clear();
}

void LocalEngine::step(const std::vector<int>& slots, std::vector<SlotStep>& out) {
    out.assign(slots.size(), SlotStep{});
    std::vector<BatchToken> batch;
    std::vector<int> logit_owner;  // index into slots of each logits row, in batch order
    for (size_t i = 0; i < slots.size(); ++i) {
        const int slot = slots[i];
        Seq& s = *seqs_.at(static_cast<size_t>(slot));
        if (s.consumed < s.prompt.size()) {
            size_t n =
                std::min(s.prompt.size() - s.consumed, static_cast<size_t>(opt_.prefill_chunk));
            for (size_t k = 0; k < n; ++k) {
                bool last = s.consumed + k + 1 == s.prompt.size();
                batch.push_back(
                    {s.prompt[s.consumed + k], s.n_past + static_cast<int32_t>(k), slot, last});
                if (last) logit_owner.push_back(static_cast<int>(i));
            }
            s.consumed += n;
            s.n_past += static_cast<int>(n);
            out[i].prompt_consumed = static_cast<int>(n);
        } else {
            batch.push_back({s.last, s.n_past, slot, true});
            s.n_past++;
            logit_owner.push_back(static_cast<int>(i));
        }
    }
    const std::vector<float>& logits = ctx_->decode(batch);
    const size_t n_vocab = static_cast<size_t>(model_.hparams().n_vocab);
    const Tokenizer& tok = model_.tokenizer();
    for (size_t r = 0; r < logit_owner.size(); ++r) {
        const size_t i = static_cast<size_t>(logit_owner[r]);
        Seq& s = *seqs_.at(static_cast<size_t>(slots[i]));
        TokenId id = s.sampler->sample(logits.data() + r * n_vocab);
        s.sampler->accept(id);
        s.last = id;
        SlotStep& o = out[i];
        o.sampled = true;
        if (tok.is_eog(id)) {
            o.eog = true;
            continue;
        }
        o.piece = s.decoder->push(id);
        o.ctx_full = s.n_past >= ctx_->n_ctx();  // no room to evaluate this token
    }
}

}  // namespace duan::hybrid
