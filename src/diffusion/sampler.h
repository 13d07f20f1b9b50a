// SD1 noise schedule (eps prediction, "CompVis" denoiser) and the k-diffusion style samplers, with
// the reference's float arithmetic (see testdata/sd/README.md and check_dumps.py).
//
//   betas scaled-linear in f32, alphas_cumprod = prod(1 - beta), sigma = sqrt((1 - acp) / acp)
//   denoised = x - sigma * eps   (c_skip 1, c_out -sigma, c_in 1/sqrt(sigma^2 + 1))
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "diffusion/rng.h"

namespace duan::diffusion {

class CompVisSchedule {
  public:
    CompVisSchedule();
    float t_to_sigma(float t) const;  // log-linear interpolation between integer timesteps
    float sigma_to_t(float sigma) const;
    float sigma_min() const { return sigmas_[0]; }
    float sigma_max() const { return sigmas_[999]; }

  private:
    float sigmas_[1000];
    float log_sigmas_[1000];
};

enum class Scheduler { Discrete, Karras, Simple, Lcm };
enum class Sampler { Euler, EulerA, DpmPP2M, Ddim, Lcm };

Sampler sampler_from_name(const std::string& s);      // euler|euler_a|dpm++2m|ddim|lcm; throws
Scheduler scheduler_from_name(const std::string& s);  // discrete|karras|simple|lcm; throws
const char* sampler_name(Sampler s);
Scheduler default_scheduler(Sampler s);  // ddim: simple, lcm: lcm, others: discrete

// steps+1 sigmas ending in 0.
std::vector<float> make_sigmas(const CompVisSchedule& sch, Scheduler kind, int steps);

// denoise(x, sigma, step_index) -> denoised latent (the caller does CFG and the UNet call).
using DenoiseFn =
    std::function<std::vector<float>(const std::vector<float>& x, float sigma, int i)>;
// Optional observer called after each step with the new x (progress, dumps).
using StepFn = std::function<void(int i, const std::vector<float>& x)>;

// Runs the sampler from x (already x_T = noise * sigma[0]); `rng` continues the stream the initial
// noise came from (ancestral samplers draw from it).
std::vector<float> sample(Sampler s, const DenoiseFn& denoise, std::vector<float> x,
                          const std::vector<float>& sigmas, Rng& rng, const StepFn& on_step = {});

// Euler-ancestral split of a step (eta 1): {sigma_down, sigma_up}.
std::pair<float, float> ancestral_step(float sigma_from, float sigma_to, float eta = 1.0f);

}  // namespace duan::diffusion
