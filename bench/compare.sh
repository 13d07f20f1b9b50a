#!/usr/bin/env bash
# Side-by-side speed of duan and llama.cpp on the same GGUF files, same threads, in one run.
#
#   bench/compare.sh [-t THREADS] [-p N_PROMPT] [-n N_GEN] [-r REPS] MODEL.gguf...
#
# duan:      $DUAN (default: build-bench/duan, else build/duan) — `duan bench --json`.
# llama.cpp: the prebuilt CPU libraries of the npm package @node-llama-cpp/linux-x64 (pinned
#            below) and llama.cpp's own llama-bench tool compiled against them from the source
#            bundle that the node-llama-cpp package ships (the same llama.cpp release). Everything
#            is installed under $DUAN_BENCH_CACHE (default ~/.cache/duan-bench), never in the repo.
#            Set LLAMA_BENCH=/path/to/llama-bench to use another build instead (LLAMA_LIB_DIR: the
#            directory holding its ggml CPU backends, if they are not next to the binary).
# Needs /usr/bin/time (Debian package `time`) for llama-bench's peak RSS.
# Extra llama-bench arguments: $LLAMA_BENCH_ARGS (default "-fa off": duan has no flash attention).
# Output: a markdown table with both engines' t/s and the ratio duan / llama.cpp, and the raw JSON
# of both tools under $OUT_DIR (default: a temporary directory) for the record.
set -euo pipefail

NLC_VERSION=3.21.1
THREADS=2 N_PROMPT=512 N_GEN=128 REPS=3
while getopts "t:p:n:r:h" opt; do
    case $opt in
        t) THREADS=$OPTARG ;;
        p) N_PROMPT=$OPTARG ;;
        n) N_GEN=$OPTARG ;;
        r) REPS=$OPTARG ;;
        *) sed -n '2,17p' "$0"; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { sed -n '2,17p' "$0"; exit 2; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DUAN=${DUAN:-}
if [ -z "$DUAN" ]; then
    for c in "$ROOT/build-bench/duan" "$ROOT/build/duan"; do [ -x "$c" ] && { DUAN=$c; break; }; done
fi
[ -n "$DUAN" ] && [ -x "$DUAN" ] || { echo "compare.sh: no duan binary (set DUAN=...)" >&2; exit 1; }

CACHE=${DUAN_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/duan-bench}
LLAMA_BENCH_ARGS=${LLAMA_BENCH_ARGS:--fa off}

setup_llama() {
    if [ -n "${LLAMA_BENCH:-}" ]; then
        LLAMA_LIB_DIR=${LLAMA_LIB_DIR:-$(dirname "$LLAMA_BENCH")}
        return
    fi
    local npm_dir=$CACHE/npm-$NLC_VERSION
    LLAMA_LIB_DIR=$npm_dir/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
    LLAMA_BENCH=$CACHE/llama-bench-$NLC_VERSION
    [ -x "$LLAMA_BENCH" ] && return
    echo "compare.sh: installing llama.cpp (node-llama-cpp $NLC_VERSION) into $CACHE ..." >&2
    mkdir -p "$npm_dir"
    (cd "$npm_dir" && [ -f package.json ] || npm init -y >/dev/null)
    # The prebuilt libraries, and the main package only for its llama.cpp source bundle
    # (--ignore-scripts: nothing is built or downloaded by install scripts).
    (cd "$npm_dir" && npm install --no-audit --no-fund --ignore-scripts --omit=optional \
        "@node-llama-cpp/linux-x64@$NLC_VERSION" "node-llama-cpp@$NLC_VERSION" >&2)
    local src=$CACHE/llama.cpp-src-$NLC_VERSION
    [ -d "$src" ] || git clone -q "$npm_dir/node_modules/node-llama-cpp/llama/gitRelease.bundle" "$src"
    local lib=$LLAMA_LIB_DIR
    echo "compare.sh: compiling llama-bench against the shipped libllama ..." >&2
    g++ -std=c++17 -O2 -DNDEBUG -I"$src/include" -I"$src/ggml/include" -I"$src/common" \
        -I"$src/vendor" "$src/tools/llama-bench/llama-bench.cpp" "$src/tools/llama-bench/main.cpp" \
        -o "$LLAMA_BENCH.tmp" "$lib/libllama-common.so" "$lib"/libllama.v*.so "$lib"/libggml.v*.so \
        "$lib/libggml-base.so" -Wl,-rpath,"$lib" -pthread
    mv "$LLAMA_BENCH.tmp" "$LLAMA_BENCH"
}
setup_llama

OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/duan-compare.XXXXXX)}
mkdir -p "$OUT_DIR"
echo "# $(date -u +%Y-%m-%dT%H:%MZ)  duan $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo '+dirty')  cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')  threads: $THREADS  reps: $REPS  load average: $(cut -d' ' -f1-3 /proc/loadavg)"
"$DUAN" bench --memory-bandwidth -t "$THREADS" --json > "$OUT_DIR/membw.json"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))[0]; print("# memory read bandwidth: %.2f GB/s (%d threads)" % (j["mem_bw_gbs"], j["n_threads"]))' "$OUT_DIR/membw.json"

i=0
for model in "$@"; do
    model=$(cd "$(dirname "$model")" && pwd)/$(basename "$model")
    i=$((i + 1))
    "$DUAN" bench -m "$model" -t "$THREADS" -p "$N_PROMPT" -n "$N_GEN" -r "$REPS" --json \
        > "$OUT_DIR/duan-$i.json"
    # The ggml CPU backends are found next to the executable or in the working directory.
    # shellcheck disable=SC2086
    # Peak RSS of the whole llama-bench process (ru_maxrss, the same VmHWM duan bench reports).
    (cd "$LLAMA_LIB_DIR" && /usr/bin/time -f '%M' -o "$OUT_DIR/llama-$i.rss" "$LLAMA_BENCH" -m "$model" -t "$THREADS" -p "$N_PROMPT" -n "$N_GEN" \
        -r "$REPS" $LLAMA_BENCH_ARGS -o json) > "$OUT_DIR/llama-$i.json" 2> "$OUT_DIR/llama-$i.log" ||
        { echo "compare.sh: llama-bench failed on $model:" >&2; tail -5 "$OUT_DIR/llama-$i.log" >&2; exit 1; }
done

python3 - "$OUT_DIR" "$i" "$@" <<'PY'
import json, os, sys
out, n, models = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
print("| model | type | size | test | duan t/s | llama.cpp t/s | duan / llama.cpp | peak RSS duan / llama.cpp | duan tg roofline |")
print("|---|---|---:|---|---:|---:|---:|---:|---:|")
for i in range(1, n + 1):
    duan = json.load(open(os.path.join(out, f"duan-{i}.json")))
    llama = json.load(open(os.path.join(out, f"llama-{i}.json")))
    try:
        llama_rss = int(open(os.path.join(out, f"llama-{i}.rss")).read().split()[-1]) * 1024
    except (OSError, ValueError, IndexError):
        llama_rss = 0
    ref = {}
    for r in llama:
        test = f"pp{r['n_prompt']}" if r["n_gen"] == 0 else f"tg{r['n_gen']}"
        ref[test] = r
    for d in duan:
        l = ref.get(d["test"])
        lt = f"{l['avg_ts']:.2f} ± {l['stddev_ts']:.2f}" if l else "-"
        ratio = f"{d['avg_ts'] / l['avg_ts']:.2f}" if l and l["avg_ts"] > 0 else "-"
        roof = f"{d['roofline_ts']:.1f}" if "roofline_ts" in d else ""
        print(f"| {os.path.basename(models[i-1])} | {d['model_type'].split(' ', 3)[-1]} "
              f"| {d['model_size'] / 2**20:.0f} MiB | {d['test']} "
              f"| {d['avg_ts']:.2f} ± {d['stddev_ts']:.2f} | {lt} | {ratio} "
              f"| {d['peak_rss'] / 2**20:.0f} / {llama_rss / 2**20:.0f} MiB | {roof} |")
PY
echo "# raw JSON: $OUT_DIR"
