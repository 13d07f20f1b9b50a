#!/usr/bin/env bash
# Runs every libFuzzer target for a bounded time: fuzz/run.sh BUILD_DIR [SECONDS]
# (build with: cmake -B build-fuzz -DDUAN_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang)
set -euo pipefail
B=$1
S=${2:-60}
HERE=$(cd "$(dirname "$0")" && pwd)
TD=${DUAN_TESTDATA:-$HERE/../../shared/testdata}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/gguf" "$work/tok"
# Seeds: the start of real files (headers, metadata, the first tensors) and tokenizer inputs.
for f in stories260K.gguf qwen2-tiny-q4_0.gguf llama-tiny-q4_k_m.gguf; do
  [ -f "$TD/models/$f" ] && head -c 4096 "$TD/models/$f" > "$work/gguf/$f"
done
for f in "$TD"/vocab/*.inp; do [ -f "$f" ] && head -c 2048 "$f" > "$work/tok/$(basename "$f")"; done
for t in "$B"/fuzz_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  corpus=$work/gguf
  [ "$name" = fuzz_tokenizer ] && corpus=$work/tok
  echo "--- $name for ${S}s"
  DUAN_FUZZ_VOCAB=${DUAN_FUZZ_VOCAB:-$TD/vocab/ggml-vocab-qwen2.gguf} \
    "$t" -max_total_time="$S" -rss_limit_mb=2048 -malloc_limit_mb=512 -max_len=8192 \
    -print_final_stats=1 "$corpus" 2>&1 | tail -n 12
done
