// duan plan --sd / --sd-preset: the Stable Diffusion plan (cmd_plan_sd.cpp), called by cmd_plan.
#pragma once
#include <string>
#include <vector>

#include "plan/budget.h"
#include "plan/sd_plan.h"

namespace duan::cli {

struct PlanSdArgs {
    std::vector<std::string> files, presets, types, devices;
    std::string cloud = "a10", catalog_path, profile_path, clip_merges;
    plan::SdRun run;
    plan::BudgetOptions budget;
    bool json = false, measure = false;
};

int plan_sd(const PlanSdArgs& a);

}  // namespace duan::cli
