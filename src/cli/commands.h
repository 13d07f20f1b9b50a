// The `duan` subcommands. Each takes the arguments after its name (argv[0] is the subcommand) and
// returns the process exit code; duan::Error is caught by main and printed as "duan: <message>".
#pragma once

namespace duan::cli {

int cmd_run(int argc, char** argv);
int cmd_chat(int argc, char** argv);
int cmd_info(int argc, char** argv);
int cmd_tokenize(int argc, char** argv);
int cmd_logits(int argc, char** argv);
int cmd_quantize(int argc, char** argv);
int cmd_imatrix(int argc, char** argv);
int cmd_perplexity(int argc, char** argv);
int cmd_convert(int argc, char** argv);
int cmd_synth(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_plan(int argc, char** argv);
int cmd_image(int argc, char** argv);

}  // namespace duan::cli
