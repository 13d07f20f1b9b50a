// Shared fixture of the SD model tests: the tiny random-weight SD1 checkpoint is generated once per
// test binary (about 8 s) by testdata/sd/make_tiny_sd.py with Debian's /usr/bin/python3 + numpy,
// into a temporary folder that is removed at exit. DUAN_SD_CKPT_DIR may point at a folder that
// already holds tiny_sd1_s0_{f32,f16}.safetensors (skips the generation).
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "testdata.h"

namespace duan::test {

class SdCheckpoints {
  public:
    // Folder with the checkpoints, or "" with `why` set when they cannot be made.
    static const std::string& dir(std::string* why) {
        static SdCheckpoints inst;
        if (why) *why = inst.why_;
        return inst.dir_;
    }

  private:
    SdCheckpoints() {
        namespace fs = std::filesystem;
        // DUAN_SD_CKPT_DIR (set by CMake for ctest runs): a cache folder shared by the test
        // processes. Made once, by whichever process gets there first (atomic rename).
        std::string cache;
        if (const char* e = std::getenv("DUAN_SD_CKPT_DIR"); e && *e) {
            cache = e;
            if (fs::exists(fs::path(cache) / "tiny_sd1_s0_f16.safetensors")) {
                dir_ = cache;
                return;
            }
        }
        const std::string script = testdata("sd/make_tiny_sd.py");
        if (!fs::exists(script)) {
            why_ = "test data not found: " + script;
            return;
        }
        if (std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
            why_ = "/usr/bin/python3 with numpy is needed to generate the tiny SD checkpoint";
            return;
        }
        std::string tmpl = (fs::temp_directory_path() / "duan_sd_XXXXXX").string();
        if (!mkdtemp(tmpl.data())) {
            why_ = "cannot create a temporary folder";
            return;
        }
        const std::string cmd = "/usr/bin/python3 '" + script + "' --seed 0 --out-dir '" + tmpl +
                                "' --dtypes f32,f16 >/dev/null";
        if (std::system(cmd.c_str()) != 0) {
            why_ = "make_tiny_sd.py failed";
            fs::remove_all(tmpl);
            return;
        }
        if (!cache.empty()) {
            std::error_code ec;
            fs::create_directories(fs::path(cache).parent_path(), ec);
            fs::rename(tmpl, cache, ec);  // fails if another process was first: use theirs
            if (ec) fs::remove_all(tmpl);
            if (fs::exists(fs::path(cache) / "tiny_sd1_s0_f16.safetensors")) {
                dir_ = cache;
                return;
            }
            why_ = "cannot place the checkpoint in " + cache;
            return;
        }
        dir_ = tmpl;
        owned_ = true;
    }
    ~SdCheckpoints() {
        if (owned_) std::filesystem::remove_all(dir_);
    }
    std::string dir_, why_;
    bool owned_ = false;
};

#define DUAN_REQUIRE_SD_CHECKPOINT(var)                                         \
    std::string var;                                                            \
    do {                                                                        \
        std::string why_;                                                       \
        var = ::duan::test::SdCheckpoints::dir(&why_);                          \
        if (var.empty()) GTEST_SKIP() << "SD checkpoint unavailable: " << why_; \
    } while (0)

}  // namespace duan::test
