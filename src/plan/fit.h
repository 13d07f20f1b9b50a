// The engine's use of the plan: before a Context is made, check that the model plus its KV cache
// and buffers fit the app budget. If not, fall back to lower-memory settings (a q8_0 KV cache, then
// a shorter context, down to 512 positions) or throw duan::Error with the plan's explanation.
#pragma once
#include <cstdint>
#include <string>

#include "llm/context.h"
#include "llm/model.h"
#include "plan/memory.h"

namespace duan::plan {

struct FitResult {
    bool fits = false;      // as given, before any fallback
    bool adjusted = false;  // options were changed to fit
    MemoryPlan plan;        // for the options as returned
    uint64_t budget = 0;
    std::string message;  // what was changed and why ("" if nothing)
};

// Adjusts `opts` (n_ctx, cache types) to fit `budget` bytes, or throws with every memory line
// and the settings tried. allow_fallback=false: throws instead of adjusting.
FitResult check_fits(const ModelShape& m, ContextOptions& opts, uint64_t budget,
                     bool allow_fallback = true);
FitResult check_fits(const Model& model, ContextOptions& opts, uint64_t budget,
                     bool allow_fallback = true);

// The budget duan uses on this machine when none is given: the linux rule (80% of RAM) capped by
// MemAvailable — no measurements, cheap enough for every model load.
uint64_t default_budget_this_machine();

// "weights 1.10 GB (...)\nkv_cache ..." — one line per entry, then the total.
std::string explain(const MemoryPlan& p);

RunShape run_shape(const ModelShape& m, const ContextOptions& o);

}  // namespace duan::plan
