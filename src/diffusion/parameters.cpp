#include "diffusion/parameters.h"

#include <sstream>

namespace duan::diffusion {

namespace {
const char* a1111_sampler(Sampler s, Scheduler sch) {
    switch (s) {
        case Sampler::Euler:
            return "Euler";
        case Sampler::EulerA:
            return "Euler a";
        case Sampler::DpmPP2M:
            return sch == Scheduler::Karras ? "DPM++ 2M Karras" : "DPM++ 2M";
        case Sampler::Ddim:
            return "DDIM";
        case Sampler::Lcm:
            return "LCM";
    }
    return "?";
}

std::string fmt_float(float v) {
    std::ostringstream os;
    os << v;
    return os.str();
}
}  // namespace

std::string a1111_parameters(const Txt2ImgParams& p, const std::string& model_name,
                             std::optional<float> strength) {
    const Scheduler sch = p.scheduler.value_or(default_scheduler(p.sampler));
    std::string s = p.prompt + "\n";
    if (!p.negative.empty()) s += "Negative prompt: " + p.negative + "\n";
    s += "Steps: " + std::to_string(p.steps) + ", Sampler: " + a1111_sampler(p.sampler, sch) +
         ", CFG scale: " + fmt_float(p.cfg) + ", Seed: " + std::to_string(p.seed) +
         ", Size: " + std::to_string(p.width) + "x" + std::to_string(p.height) +
         ", Model: " + model_name;
    if (p.rng == "cpu") s += ", RNG: CPU";
    if (strength) s += ", Denoising strength: " + fmt_float(*strength);
    s += ", Version: duan";
    return s;
}

}  // namespace duan::diffusion
