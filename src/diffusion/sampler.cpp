#include "diffusion/sampler.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace duan::diffusion {

CompVisSchedule::CompVisSchedule() {
    // All in float32, in this order, to match the reference bit for bit.
    const float ls = std::sqrt(0.00085f), le = std::sqrt(0.012f);
    const float amount = le - ls;
    float prod = 1.0f;
    for (int i = 0; i < 1000; ++i) {
        const float beta = ls + amount * (static_cast<float>(i) / 999.0f);
        prod = prod * (1.0f - beta * beta);
        sigmas_[i] = std::sqrt((1.0f - prod) / prod);
        log_sigmas_[i] = std::log(sigmas_[i]);
    }
}

float CompVisSchedule::t_to_sigma(float t) const {
    const int lo = static_cast<int>(std::floor(t)), hi = static_cast<int>(std::ceil(t));
    const float w = t - static_cast<float>(lo);
    return std::exp((1.0f - w) * log_sigmas_[lo] + w * log_sigmas_[hi]);
}

float CompVisSchedule::sigma_to_t(float sigma) const {
    const float ls = std::log(sigma);
    int low = 0;
    for (int i = 0; i < 1000; ++i)
        if (ls - log_sigmas_[i] >= 0) ++low;
    low = std::min(std::max(low - 1, 0), 998);
    const float a = log_sigmas_[low], b = log_sigmas_[low + 1];
    float w = (a - ls) / (a - b);
    w = std::max(0.0f, std::min(1.0f, w));
    return (1.0f - w) * static_cast<float>(low) + w * static_cast<float>(low + 1);
}

Sampler sampler_from_name(const std::string& s) {
    if (s == "euler") return Sampler::Euler;
    if (s == "euler_a") return Sampler::EulerA;
    if (s == "dpm++2m") return Sampler::DpmPP2M;
    if (s == "ddim") return Sampler::Ddim;
    if (s == "lcm") return Sampler::Lcm;
    fail("unknown sampler '", s, "' (expected euler, euler_a, dpm++2m, ddim or lcm)");
}

Scheduler scheduler_from_name(const std::string& s) {
    if (s == "discrete") return Scheduler::Discrete;
    if (s == "karras") return Scheduler::Karras;
    if (s == "simple") return Scheduler::Simple;
    if (s == "lcm") return Scheduler::Lcm;
    fail("unknown scheduler '", s, "' (expected discrete, karras, simple or lcm)");
}

const char* sampler_name(Sampler s) {
    switch (s) {
        case Sampler::Euler:
            return "euler";
        case Sampler::EulerA:
            return "euler_a";
        case Sampler::DpmPP2M:
            return "dpm++2m";
        case Sampler::Ddim:
            return "ddim";
        case Sampler::Lcm:
            return "lcm";
    }
    return "?";
}

Scheduler default_scheduler(Sampler s) {
    if (s == Sampler::Ddim) return Scheduler::Simple;
    if (s == Sampler::Lcm) return Scheduler::Lcm;
    return Scheduler::Discrete;
}

std::vector<float> make_sigmas(const CompVisSchedule& sch, Scheduler kind, int steps) {
    if (steps < 1) fail("steps must be at least 1, got ", steps);
    std::vector<float> r;
    const uint32_t n = static_cast<uint32_t>(steps);
    switch (kind) {
        case Scheduler::Discrete:
            if (n == 1) {
                r.push_back(sch.t_to_sigma(999.0f));
            } else {
                const float step = 999.0f / static_cast<float>(n - 1);
                for (uint32_t i = 0; i < n; ++i)
                    r.push_back(sch.t_to_sigma(999.0f - step * static_cast<float>(i)));
            }
            break;
        case Scheduler::Karras: {
            const float rho = 7.0f;
            const float smin = std::max(sch.sigma_min(), 1e-6f), smax = sch.sigma_max();
            const float mn = std::pow(smin, 1.0f / rho), mx = std::pow(smax, 1.0f / rho);
            for (uint32_t i = 0; i < n; ++i)
                r.push_back(std::pow(
                    mx + static_cast<float>(i) / (static_cast<float>(n) - 1.0f) * (mn - mx), rho));
            if (n == 1) r[0] = smax;  // (n-1) = 0 would divide by zero
            break;
        }
        case Scheduler::Simple: {
            const float f = 1000.0f / static_cast<float>(n);
            for (uint32_t i = 0; i < n; ++i) {
                int idx = 999 - static_cast<int>(static_cast<float>(i) * f);
                r.push_back(sch.t_to_sigma(static_cast<float>(std::max(idx, 0))));
            }
            break;
        }
        case Scheduler::Lcm: {
            const int orig = 50, k = 1000 / orig;
            for (uint32_t i = 0; i < n; ++i) {
                const int index = static_cast<int>((i * orig) / n);
                r.push_back(sch.t_to_sigma(static_cast<float>((orig - index) * k - 1)));
            }
            break;
        }
    }
    r.push_back(0.0f);
    return r;
}

std::pair<float, float> ancestral_step(float sigma_from, float sigma_to, float eta) {
    float up = 0.0f, down = sigma_to;
    if (eta <= 0.0f) return {down, up};
    const float f2 = sigma_from * sigma_from, t2 = sigma_to * sigma_to;
    if (f2 > 0.0f) {
        const float term = t2 * (f2 - t2) / f2;
        up = std::min(sigma_to, eta * std::sqrt(std::max(term, 0.0f)));
    }
    down = std::sqrt(std::max(t2 - up * up, 0.0f));
    return {down, up};
}

std::vector<float> sample(Sampler s, const DenoiseFn& denoise, std::vector<float> x,
                          const std::vector<float>& sigmas, Rng& rng, const StepFn& on_step) {
    const int steps = static_cast<int>(sigmas.size()) - 1;
    const size_t n = x.size();
    std::vector<float> old_den;
    for (int i = 0; i < steps; ++i) {
        const float sigma = sigmas[i], sigma_to = sigmas[i + 1];
        std::vector<float> den = denoise(x, sigma, i);
        switch (s) {
            case Sampler::Euler: {
                const float dt = sigma_to - sigma;
                for (size_t j = 0; j < n; ++j) x[j] = x[j] + (x[j] - den[j]) / sigma * dt;
                break;
            }
            case Sampler::EulerA:
            case Sampler::Ddim: {
                // DDIM (trailing) is Euler-ancestral with eta 0 on the "simple" schedule.
                const float eta = s == Sampler::EulerA ? 1.0f : 0.0f;
                if (sigma_to == 0.0f) {
                    x = den;
                } else if (eta == 0.0f) {
                    const float r = sigma_to / sigma;
                    const double omr = 1.0 - r;  // the reference computes (1.0 - r) in double
                    for (size_t j = 0; j < n; ++j)
                        x[j] = r * x[j] + static_cast<float>(omr * den[j]);
                } else {
                    auto [down, up] = ancestral_step(sigma, sigma_to, eta);
                    const float r = down / sigma;
                    for (size_t j = 0; j < n; ++j) x[j] = r * x[j] + (1.0f - r) * den[j];
                    if (up > 0.0f) {
                        std::vector<float> z = rng.randn(n);
                        for (size_t j = 0; j < n; ++j) x[j] += z[j] * up;
                    }
                }
                break;
            }
            case Sampler::DpmPP2M: {
                auto tf = [](float sg) { return -std::log(sg); };
                const float t = tf(sigma), tn = tf(sigma_to), h = tn - t;
                const float a = sigma_to / sigma, b = std::exp(-h) - 1.0f;
                if (i == 0 || sigma_to == 0.0f) {
                    for (size_t j = 0; j < n; ++j) x[j] = a * x[j] - b * den[j];
                } else {
                    const float r = (t - tf(sigmas[i - 1])) / h;
                    const float c1 = 1.0f + 1.0f / (2.0f * r), c2 = 1.0f / (2.0f * r);
                    for (size_t j = 0; j < n; ++j)
                        x[j] = a * x[j] - b * (c1 * den[j] - c2 * old_den[j]);
                }
                old_den = den;
                break;
            }
            case Sampler::Lcm: {
                x = den;
                if (sigma_to > 0.0f) {
                    std::vector<float> z = rng.randn(n);
                    for (size_t j = 0; j < n; ++j) x[j] += z[j] * sigma_to;
                }
                break;
            }
        }
        if (on_step) on_step(i, x);
    }
    return x;
}

}  // namespace duan::diffusion
