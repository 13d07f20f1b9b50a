// duan plan --sd FILE --measure: one real text-to-image run here, timed per stage.
#include <sys/resource.h>

#include <chrono>

#include "diffusion/pipeline.h"
#include "diffusion/png.h"
#include "plan/plan.h"
#include "plan/sd_plan.h"

namespace duan::plan {

namespace {
double now() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}
double cpu() {  // user + system seconds of every thread of the process
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}
}  // namespace

SdMeasured sd_measure_run(const std::string& checkpoint, const std::string& merges, const SdRun& r,
                          int threads) {
    SdMeasured out;
    const double t0 = now();
    diffusion::StableDiffusion sd(checkpoint, merges, threads);
    out.load_s = now() - t0;
    diffusion::Txt2ImgParams p;
    p.prompt = "a red ball on the grass";
    p.steps = r.steps;
    p.cfg = static_cast<float>(r.cfg);
    p.width = r.width;
    p.height = r.height;
    p.sampler = diffusion::Sampler::Euler;
    double first_end = 0, first_len = 0, last_end = 0, c_first = 0, c_last = 0;
    diffusion::Txt2ImgHooks hooks;
    hooks.progress = [&](int step, int, double secs) {
        last_end = now();
        c_last = cpu();
        if (step == 1) first_end = last_end, first_len = secs, c_first = c_last;
    };
    const double t1 = now(), c1 = cpu();
    const auto res = sd.txt2img(p, hooks);
    const double t2 = now(), c2 = cpu();
    (void)diffusion::encode_png(res.rgb.data(), res.width, res.height);
    const double t3 = now(), c3 = cpu();
    // The progress hook's first step time runs from the sampler's start: text encoding is what
    // came before it; the VAE decode is what came after the last step.
    out.text_s = first_end - first_len - t1;
    out.denoise_s = last_end - (first_end - first_len);
    out.vae_s = t2 - last_end;
    out.png_s = t3 - t2;
    out.total_s = t3 - t1;
    // CPU seconds: on a shared machine the wall clock includes waiting for a core. The text
    // stage's CPU time ends at the first step (its share of that step is estimated by wall time).
    const double step1_cpu =
        first_len > 0 && first_end > t1 ? (c_first - c1) * first_len / (first_end - t1) : 0;
    out.text_cpu_s = c_first - c1 - step1_cpu;
    out.denoise_cpu_s = c_last - c_first + step1_cpu;
    out.vae_cpu_s = c2 - c_last;
    out.png_cpu_s = c3 - c2;
    out.total_cpu_s = c3 - c1;
    out.peak_rss = peak_rss_bytes();
    return out;
}

}  // namespace duan::plan
