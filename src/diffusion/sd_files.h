// Where the files an SD checkpoint needs but does not carry are found.
#pragma once
#include <string>

namespace duan::diffusion {

// CLIP's merges.txt: `flag` when given, else $DUAN_CLIP_MERGES, else merges.txt next to the
// checkpoint or in its clip/ folder. Throws duan::Error explaining the options.
std::string find_clip_merges(const std::string& flag, const std::string& checkpoint);

}  // namespace duan::diffusion
