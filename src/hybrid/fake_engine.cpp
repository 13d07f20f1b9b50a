#include "hybrid/fake_engine.h"

#include <algorithm>
#include <new>
#include <sstream>
#include <thread>

namespace duan::hybrid {

FakeEngine::FakeEngine(FakeEngineOptions opt) : opt_(std::move(opt)) {
    seqs_.resize(static_cast<size_t>(std::max(1, opt_.n_slots)));
}

std::string FakeEngine::word(int i) {
    static const char* words[] = {" the",  " quick", " brown", " fox", " jumps",
                                  " over", " the",   " lazy",  " dog", " ."};
    return words[i % 10];
}

std::vector<int32_t> FakeEngine::tokenize(const GenRequest& req) const {
    std::string text;
    if (req.chat) {
        for (const auto& m : req.messages) text += "<" + m.role + "> " + m.content + "\n";
        text += "<assistant>";
    } else {
        text = req.prompt;
    }
    std::vector<int32_t> toks{1};  // BOS
    std::istringstream is(text);
    std::string w;
    while (is >> w) toks.push_back(static_cast<int32_t>(2 + (std::hash<std::string>{}(w) % 1000)));
    return toks;
}

void FakeEngine::begin(int slot, const GenRequest&, std::vector<int32_t> prompt) {
    Seq& s = seqs_.at(static_cast<size_t>(slot));
    s = Seq{true, static_cast<int>(prompt.size()), 0, 0};
    begun++;
}

void FakeEngine::end(int slot) {
    seqs_.at(static_cast<size_t>(slot)).live = false;
    ended++;
}

void FakeEngine::step(const std::vector<int>& slots, std::vector<SlotStep>& out) {
    if (opt_.step_delay.count() > 0) std::this_thread::sleep_for(opt_.step_delay);
    if (fail_steps.load() > 0) {
        fail_steps--;
        throw std::bad_alloc();
    }
    int mb = max_batch.load();
    while (static_cast<int>(slots.size()) > mb &&
           !max_batch.compare_exchange_weak(mb, static_cast<int>(slots.size()))) {
    }
    out.assign(slots.size(), SlotStep{});
    for (size_t i = 0; i < slots.size(); ++i) {
        Seq& s = seqs_.at(static_cast<size_t>(slots[i]));
        SlotStep& o = out[i];
        if (s.consumed < s.n_prompt) {
            int n = std::min(opt_.prefill_chunk, s.n_prompt - s.consumed);
            s.consumed += n;
            o.prompt_consumed = n;
            if (s.consumed < s.n_prompt) continue;  // more prompt to go: no token yet
        }
        o.sampled = true;
        if (opt_.eog_after >= 0 && s.n_gen >= opt_.eog_after) {
            o.eog = true;
            continue;
        }
        o.piece = word(s.n_gen++);
        o.ctx_full = s.n_prompt + s.n_gen >= opt_.n_ctx;
    }
}

}  // namespace duan::hybrid
