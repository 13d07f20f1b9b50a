#include "llm/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace duan {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Total order for candidates: higher logit first, lower id breaks ties. Total, so nth_element and
// sort give the same result with every standard library.
struct ByLogitDesc {
    template <typename C>
    bool operator()(const C& a, const C& b) const {
        return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
    }
};

// Bytes at the end of `s` that start a UTF-8 sequence which is not complete yet (0 if none).
// Stray continuation bytes without a lead are not held (they would never complete).
size_t incomplete_utf8_tail(std::string_view s) {
    const size_t n = s.size();
    for (size_t k = 1; k <= std::min<size_t>(3, n); ++k) {
        const auto c = static_cast<unsigned char>(s[n - k]);
        if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
        size_t need = 1;
        if (c >= 0xF0 && c < 0xF8) {
            need = 4;
        } else if (c >= 0xE0) {
            need = 3;
        } else if (c >= 0xC0) {
            need = 2;
        }
        return need > k ? k : 0;
    }
    return 0;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Sampler

Sampler::Sampler(const SamplingParams& params, int n_vocab, std::vector<TokenId> eog)
    : params_(params), n_vocab_(n_vocab) {
    if (n_vocab <= 0) fail("sampler: n_vocab must be positive, got ", n_vocab);
    if (std::isnan(params.temperature)) fail("sampler: temperature is NaN");
    if (std::isnan(params.top_p)) fail("sampler: top_p is NaN");
    if (std::isnan(params.min_p)) fail("sampler: min_p is NaN");
    if (!(params.repeat_penalty > 0.0f) || !std::isfinite(params.repeat_penalty))
        fail("sampler: repeat_penalty must be a positive number, got ", params.repeat_penalty);
    if (!std::isfinite(params.presence_penalty) || !std::isfinite(params.frequency_penalty))
        fail("sampler: presence/frequency penalties must be finite");
    if (params.ignore_eos) {
        for (TokenId id : eog)
            if (id >= 0 && id < n_vocab) suppressed_.push_back(id);
    }
    if (is_random_seed(params.seed)) {
        std::random_device rd;
        seed_ = (uint64_t{rd()} << 32) ^ uint64_t { rd() };
        if (is_random_seed(seed_)) seed_ ^= 1;  // the pick must be reusable as a fixed seed
    } else {
        seed_ = params.seed;
    }
    rng_.seed(seed_);
}

void Sampler::reset() {
    window_.clear();
    counts_.clear();
    rng_.seed(seed_);
}

void Sampler::accept(TokenId id) {
    const int last_n = params_.repeat_last_n;
    if (last_n == 0) return;
    ++counts_[id];
    if (last_n < 0) return;  // unbounded window: the counts are all we need
    window_.push_back(id);
    if (window_.size() > static_cast<size_t>(last_n)) {
        const TokenId old = window_.front();
        window_.pop_front();
        auto it = counts_.find(old);
        if (--it->second == 0) counts_.erase(it);
    }
}

double Sampler::uniform01() {
    // The top 53 bits of one 64-bit draw, scaled into [0, 1): exact in a double.
    return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

void Sampler::prepare(const float* logits) {
    cand_.resize(n_vocab_);
    for (int i = 0; i < n_vocab_; ++i) {
        const float v = logits[i];
        cand_[i] = {i, std::isnan(v) ? kNegInf : v};
    }
    n_cand_ = cand_.size();
    sorted_ = false;
    for (TokenId id : suppressed_) cand_[id].logit = kNegInf;

    const SamplingParams& p = params_;
    const bool penalties =
        p.repeat_last_n != 0 &&
        (p.repeat_penalty != 1.0f || p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f);
    if (!penalties) return;
    // cand_[id].id == id here, so the counted ids index the array directly. Each token's
    // adjustment is independent, so the map's iteration order does not matter.
    for (const auto& [id, count] : counts_) {
        if (id < 0 || id >= n_vocab_ || count <= 0) continue;
        float& l = cand_[id].logit;
        // Dividing a negative logit would make it *more* likely, so those are multiplied.
        if (l <= 0.0f) {
            l *= p.repeat_penalty;
        } else {
            l /= p.repeat_penalty;
        }
        l -= static_cast<float>(count) * p.frequency_penalty + p.presence_penalty;
        if (std::isnan(l)) l = kNegInf;
    }
}

TokenId Sampler::sample(const float* logits) {
    prepare(logits);

    if (params_.temperature <= 0.0f) {
        // Greedy: first (lowest id) maximum; the RNG is not touched.
        size_t best = 0;
        for (size_t i = 1; i < n_cand_; ++i)
            if (cand_[i].logit > cand_[best].logit) best = i;
        return cand_[best].id;
    }

    if (params_.top_k > 0) top_k(static_cast<size_t>(params_.top_k));
    top_p(params_.top_p);
    min_p(params_.min_p);
    const float inv_t = 1.0f / params_.temperature;
    if (params_.temperature != 1.0f)
        for (size_t i = 0; i < n_cand_; ++i) cand_[i].logit *= inv_t;
    return dist();
}

void Sampler::top_k(size_t k) {
    if (k >= n_cand_) return;
    auto first = cand_.begin();
    if (k <= 4096) {
        // One pass with a heap of the k best so far (its top is the worst of them): most tokens
        // are rejected by one comparison, cheaper than nth_element over the whole vocabulary.
        scratch_.assign(first, first + k);
        std::make_heap(scratch_.begin(), scratch_.end(), ByLogitDesc{});
        for (size_t i = k; i < n_cand_; ++i) {
            if (!ByLogitDesc{}(cand_[i], scratch_.front())) continue;
            std::pop_heap(scratch_.begin(), scratch_.end(), ByLogitDesc{});
            scratch_.back() = cand_[i];
            std::push_heap(scratch_.begin(), scratch_.end(), ByLogitDesc{});
        }
        std::sort(scratch_.begin(), scratch_.end(), ByLogitDesc{});
        std::copy(scratch_.begin(), scratch_.end(), first);
    } else {
        std::nth_element(first, first + k, first + n_cand_, ByLogitDesc{});
        std::sort(first, first + k, ByLogitDesc{});
    }
    n_cand_ = k;
    sorted_ = true;
}

void Sampler::top_p(float p) {
    if (p >= 1.0f || n_cand_ <= 1) return;
    float max_l = kNegInf;
    for (size_t i = 0; i < n_cand_; ++i) max_l = std::max(max_l, cand_[i].logit);
    if (max_l == kNegInf) return;  // nothing finite: leave it to dist()

    if (sorted_) {  // after top-k: a short sorted list, keep its minimal prefix
        double sum = 0.0;
        for (size_t i = 0; i < n_cand_; ++i) sum += std::exp(cand_[i].logit - max_l);
        const double target = static_cast<double>(p) * sum;
        double cum = 0.0;
        for (size_t i = 0; i < n_cand_; ++i) {
            cum += std::exp(cand_[i].logit - max_l);
            if (cum >= target) {
                n_cand_ = i + 1;
                return;
            }
        }
        return;  // rounding kept the sum just short of the target: keep everything
    }

    // Whole vocabulary, unsorted. Avoid sorting it: histogram the probability mass into buckets
    // of logit distance from the max (1/32 logit wide, everything 32+ below the max in the last
    // one), find the bucket where the running mass reaches p, and sort only that bucket's
    // members to place the exact cut. The kept set is then compacted in id order.
    constexpr int kBuckets = 1024;
    constexpr float kRange = 32.0f;
    constexpr float kScale = kBuckets / kRange;
    bucket_.resize(n_cand_);
    std::vector<double> mass(kBuckets, 0.0);
    double sum = 0.0;
    for (size_t i = 0; i < n_cand_; ++i) {
        const float d = max_l - cand_[i].logit;  // >= 0, +inf for -inf logits
        const int b =
            d < kRange ? std::min(static_cast<int>(d * kScale), kBuckets - 1) : kBuckets - 1;
        bucket_[i] = static_cast<uint16_t>(b);
        const double e = std::exp(cand_[i].logit - max_l);
        mass[b] += e;
        sum += e;
    }
    const double target = static_cast<double>(p) * sum;
    double cum = 0.0;
    int cut = 0;
    for (; cut < kBuckets; ++cut) {
        if (cum + mass[cut] >= target) break;
        cum += mass[cut];
    }
    if (cut == kBuckets) return;  // rounding: keep everything

    scratch_.clear();
    for (size_t i = 0; i < n_cand_; ++i)
        if (bucket_[i] == cut) scratch_.push_back(cand_[i]);
    std::sort(scratch_.begin(), scratch_.end(), ByLogitDesc{});
    size_t j = 0;
    for (; j + 1 < scratch_.size(); ++j) {
        cum += std::exp(scratch_[j].logit - max_l);
        if (cum >= target) break;
    }
    const Cand last = scratch_[j];  // the last kept candidate in the total order

    size_t out = 0;
    for (size_t i = 0; i < n_cand_; ++i) {
        const int b = bucket_[i];
        if (b < cut || (b == cut && !ByLogitDesc{}(last, cand_[i]))) cand_[out++] = cand_[i];
    }
    n_cand_ = out;
}

void Sampler::min_p(float p) {
    if (p <= 0.0f || n_cand_ <= 1) return;
    float max_l = kNegInf;
    size_t arg = 0;
    for (size_t i = 0; i < n_cand_; ++i)
        if (cand_[i].logit > max_l) max_l = cand_[i].logit, arg = i;
    if (max_l == kNegInf) return;
    // p_i >= p * p_max  <=>  logit_i >= max_logit + log(p)
    const float min_logit = max_l + std::log(p);
    size_t out = 0;
    for (size_t i = 0; i < n_cand_; ++i)
        if (cand_[i].logit >= min_logit) cand_[out++] = cand_[i];  // keeps the order
    if (out == 0) {  // only possible for p > 1: keep the most likely token
        cand_[0] = cand_[arg];
        out = 1;
    }
    n_cand_ = out;
}

TokenId Sampler::dist() {
    if (n_cand_ == 1) return cand_[0].id;
    float max_l = kNegInf;
    for (size_t i = 0; i < n_cand_; ++i) max_l = std::max(max_l, cand_[i].logit);
    if (max_l == kNegInf) return cand_[0].id;  // every token suppressed: nothing to weigh

    probs_.resize(n_cand_);
    double sum = 0.0;
    for (size_t i = 0; i < n_cand_; ++i) {
        probs_[i] = std::exp(cand_[i].logit - max_l);
        sum += probs_[i];
    }
    // Inverse CDF: the first candidate whose running mass passes u * sum. Strictly greater, so
    // a candidate whose probability underflowed to 0 is never picked.
    const double target = uniform01() * sum;
    double run = 0.0;
    size_t last_nonzero = 0;
    for (size_t i = 0; i < n_cand_; ++i) {
        if (probs_[i] <= 0.0f) continue;
        last_nonzero = i;
        run += probs_[i];
        if (run > target) return cand_[i].id;
    }
    return cand_[last_nonzero].id;  // rounding left target just above the total
}

// ---------------------------------------------------------------------------------------------
// StopMatcher

StopMatcher::StopMatcher(std::vector<std::string> stops) {
    for (auto& s : stops)
        if (!s.empty()) stops_.push_back(std::move(s));
}

StopMatcher::Result StopMatcher::feed(std::string_view piece) {
    if (stopped_) return {"", true};
    held_.append(piece);

    // A stop can only start inside held_: everything emitted earlier was checked not to be the
    // beginning of any stop string (see the hold-back below).
    size_t hit = std::string::npos;
    for (const auto& s : stops_) hit = std::min(hit, held_.find(s));
    if (hit != std::string::npos) {
        Result r{held_.substr(0, hit), true};
        held_.clear();
        stopped_ = true;
        return r;
    }

    // Hold back the longest suffix that is a proper prefix of some stop string.
    const size_t n = held_.size();
    size_t hold = 0;
    for (const auto& s : stops_) {
        for (size_t len = std::min(s.size() - 1, n); len > hold; --len) {
            if (held_.compare(n - len, len, s, 0, len) == 0) {
                hold = len;
                break;
            }
        }
    }
    hold = std::max(hold, incomplete_utf8_tail(held_));
    Result r{held_.substr(0, n - hold), false};
    held_.erase(0, n - hold);
    return r;
}

std::string StopMatcher::flush() {
    std::string out;
    out.swap(held_);
    return out;
}

}  // namespace duan
