// Where the reference test data lives: $DUAN_TESTDATA, else ../shared/testdata next to the source.
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace duan::test {

inline std::string testdata_dir() {
    if (const char* e = std::getenv("DUAN_TESTDATA"); e && *e) return e;
    return DUAN_TESTDATA_DEFAULT;
}

inline std::string testdata(const std::string& rel) { return testdata_dir() + "/" + rel; }

// Skips the calling test (with a clear message) when the reference data is absent.
#define DUAN_REQUIRE_TESTDATA(rel)                                                         \
    do {                                                                                   \
        if (!std::filesystem::exists(::duan::test::testdata(rel)))                         \
            GTEST_SKIP() << "test data not found: " << ::duan::test::testdata(rel)         \
                         << " (set DUAN_TESTDATA to the shared/testdata folder)";          \
    } while (0)

}  // namespace duan::test
