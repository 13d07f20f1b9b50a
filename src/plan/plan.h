// duan plan: for a model (preset at a type, or a GGUF file) × device × context — does it fit the
// app budget, with what headroom, and how fast will prefill and decode be. Also picks the best
// model and quantization for a device (recommend) and measures a real run to check the model
// (measure_run).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "plan/budget.h"
#include "plan/device.h"
#include "plan/memory.h"
#include "plan/speed.h"

namespace duan::plan {

struct PlanRow {
    ModelShape model;
    RunShape run;
    Device device;
    Budget budget;
    MemoryPlan memory;
    SpeedPlan speed;
    bool fits = false;
    int64_t headroom = 0;  // budget − total (negative: short by)
};

PlanRow make_row(const ModelShape& m, const RunShape& r, const Device& d, const Catalog& c,
                 const BudgetOptions& b, const Profile& p, int prompt_tokens = 512,
                 int answer_tokens = 2048);
nlohmann::json row_json(const PlanRow& row);

// Every preset × type that fits the device's budget, best first: the most parameters, then the
// higher-fidelity type (f16 > q8_0 > q6_k > q5_k_m > q4_k_m > q4_0), among those whose calibrated
// decode is at least min_decode_tps (when none is that fast, the fastest that fits comes first).
std::vector<PlanRow> recommend(const Device& d, const Catalog& c, const BudgetOptions& b,
                               const Profile& p, const RunShape& r, double min_decode_tps = 5.0);
const std::vector<std::string>& recommend_types();

// A real run on this machine: load `path`, prefill `prompt_tokens` tokens in one batch, decode
// `gen_tokens` more one at a time; report the speeds and the process's peak RSS (VmHWM). Call it
// before anything else allocates much in the process (the peak is process-wide).
struct Measured {
    double prefill_tps = 0, decode_tps = 0;
    uint64_t peak_rss = 0;
    uint64_t rss_before = 0;  // VmRSS before loading
};
Measured measure_run(const std::string& path, const RunShape& r, int prompt_tokens, int gen_tokens);
uint64_t peak_rss_bytes();  // VmHWM of this process

}  // namespace duan::plan
