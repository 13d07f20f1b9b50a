#include "diffusion/sd_files.h"

#include <cstdlib>
#include <filesystem>

#include "core/error.h"

namespace duan::diffusion {

std::string find_clip_merges(const std::string& flag, const std::string& ckpt) {
    namespace fs = std::filesystem;
    if (!flag.empty()) return flag;
    if (const char* e = std::getenv("DUAN_CLIP_MERGES"); e && *e) return e;
    const fs::path dir = fs::path(ckpt).parent_path();
    // (a diffusers folder keeps it in tokenizer/merges.txt)
    for (const fs::path& p : {dir / "merges.txt", dir / "clip" / "merges.txt",
                              fs::path(ckpt) / "tokenizer" / "merges.txt"})
        if (fs::exists(p)) return p.string();
    fail(
        "CLIP tokenizer not found: SD checkpoints do not include it. Pass --clip-merges "
        "PATH/merges.txt (OpenAI CLIP's BPE merges, as in openai/clip-vit-large-patch14), set "
        "DUAN_CLIP_MERGES, or put merges.txt next to ",
        ckpt);
}

}  // namespace duan::diffusion
