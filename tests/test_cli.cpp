// The `duan` command end to end: the README's default run, info, tokenize, logits, and errors.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "testdata.h"

namespace {

struct Result {
    int status;
    std::string out;
};

// Runs `duan ARGS` through the shell; stdout only (stderr to /dev/null unless merged).
Result duan(const std::string& args, bool merge_stderr = false) {
    std::string cmd = std::string(DUAN_BINARY) + " " + args + (merge_stderr ? " 2>&1" : " 2>/dev/null");
    std::unique_ptr<FILE, int (*)(FILE*)> p(popen(cmd.c_str(), "r"), pclose);
    std::string out;
    std::array<char, 4096> buf;
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p.get())) > 0) out.append(buf.data(), n);
    int st = pclose(p.release());
    return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

std::string q(const std::string& s) { return "'" + s + "'"; }

TEST(Cli, RunDefaultModelGreedy) {
    DUAN_REQUIRE_TESTDATA("models/stories260K.gguf");
    auto r = duan("run -m " + q(duan::test::testdata("models/stories260K.gguf")) +
                  " -p 'Once upon a time' -n 40 --temp 0");
    ASSERT_EQ(r.status, 0);
    EXPECT_EQ(r.out.rfind("Once upon a time, there was a little girl named Lily. She loved to "
                          "play outside in the park.",
                          0),
              0u)
        << r.out;
}

TEST(Cli, SameSeedSameText) {
    DUAN_REQUIRE_TESTDATA("models/stories260K.gguf");
    const std::string base = "run -m " + q(duan::test::testdata("models/stories260K.gguf")) +
                             " -p 'Once upon a time' -n 48 --temp 1.0 --seed ";
    auto a = duan(base + "7"), b = duan(base + "7"), c = duan(base + "8");
    ASSERT_EQ(a.status, 0);
    EXPECT_EQ(a.out, b.out);
    EXPECT_NE(a.out, c.out);
}

TEST(Cli, Info) {
    DUAN_REQUIRE_TESTDATA("models/qwen2-tiny-q4_k_m.gguf");
    auto r = duan("info " + q(duan::test::testdata("models/qwen2-tiny-q4_k_m.gguf")));
    ASSERT_EQ(r.status, 0);
    for (const char* s : {"architecture:  qwen2", "q4_k", "RAM to load", "tokenizer:     gpt2",
                          "tied to token_embd", "neox"})
        EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
}

TEST(Cli, TokenizeIds) {
    DUAN_REQUIRE_TESTDATA("models/stories260K.gguf");
    auto r = duan("tokenize -m " + q(duan::test::testdata("models/stories260K.gguf")) +
                  " -p 'Once upon a time' --ids");
    ASSERT_EQ(r.status, 0);
    EXPECT_EQ(r.out, "1 403 407 261 378\n");
}

TEST(Cli, LogitsSchema) {
    DUAN_REQUIRE_TESTDATA("models/stories260K.gguf");
    auto r = duan("logits -m " + q(duan::test::testdata("models/stories260K.gguf")) +
                  " --tokens 1,403,407,261,378 --greedy 4 --full 0,4");
    ASSERT_EQ(r.status, 0);
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["n_vocab"], 512);
    EXPECT_EQ(j["prompt"].size(), 5u);
    EXPECT_EQ(j["prompt_top"].size(), 5u);
    EXPECT_EQ(j["prompt_top"][0]["ids"].size(), 16u);
    EXPECT_EQ(j["full"]["4"].size(), 512u);
    EXPECT_EQ(j["greedy"].size(), 4u);
    EXPECT_EQ(j["greedy_top"][0]["ids"].size(), 8u);
}

TEST(Cli, ClearErrors) {
    auto r = duan("run -m /nonexistent.gguf -p hi", true);
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.out.find("/nonexistent.gguf"), std::string::npos) << r.out;
    r = duan("frobnicate", true);
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.out.find("unknown command"), std::string::npos);
    DUAN_REQUIRE_TESTDATA("models/stories260K.gguf");
    r = duan("chat -m " + q(duan::test::testdata("models/stories260K.gguf")) +
                 " --chat-template nosuch < /dev/null",
             true);
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.out.find("nosuch"), std::string::npos) << r.out;
}

}  // namespace
