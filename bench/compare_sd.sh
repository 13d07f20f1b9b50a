#!/usr/bin/env bash
# Side-by-side Stable Diffusion speed and memory of duan and stable-diffusion.cpp (the reference),
# same prompt, sampler, steps, CFG, size, seed, RNG and threads, run back to back in one script run.
#
#   bench/compare_sd.sh [-t THREADS] [-s STEPS] [-c CFG] [-z "256 512"] [-r REPS] SDCPP_MODEL DUAN_MODEL
#
# SDCPP_MODEL: what sd-cli loads (e.g. the F16 safetensors); DUAN_MODEL: what `duan image` loads
# (the same file, or its `duan convert --sd` GGUF: F16 GGUF holds the same values bit for bit).
# sd-cli: $SDCPP (default /tmp/sdcpp/build/bin/sd-cli; build it outside the repo: docs/PERFORMANCE.md,
# "Stable Diffusion"); extra sd-cli arguments: $SDCPP_ARGS (e.g. "--type q8_0").
# duan: $DUAN (default build/duan); extra arguments: $DUAN_ARGS. CLIP merges: $CLIP_MERGES
# (default ../shared/testdata/sd/clip/merges.txt).
# Needs /usr/bin/time (Debian package `time`) for the peak RSS.
#
# Per step: sd.cpp's "sampling completed, taking X s" / steps, duan's final "s/step" (the mean over
# the steps); one step is 2 UNet evaluations when CFG != 1, in both. End to end: the wall clock of
# the whole process (load, text encoder, sampling, VAE decode, PNG). Ratios are sd.cpp / duan
# (> 1: duan is faster or smaller). Logs are kept under $OUT_DIR (default: a temporary directory).
set -euo pipefail

THREADS=2 STEPS=2 CFG=7 SIZES="256 512" REPS=1
while getopts "t:s:c:z:r:h" opt; do
    case $opt in
        t) THREADS=$OPTARG ;;
        s) STEPS=$OPTARG ;;
        c) CFG=$OPTARG ;;
        z) SIZES=$OPTARG ;;
        r) REPS=$OPTARG ;;
        *) sed -n '2,19p' "$0"; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 2 ] || { sed -n '2,19p' "$0"; exit 2; }
SD_MODEL=$1 DUAN_MODEL=$2

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DUAN=${DUAN:-$ROOT/build/duan}
SDCPP=${SDCPP:-/tmp/sdcpp/build/bin/sd-cli}
CLIP_MERGES=${CLIP_MERGES:-$ROOT/../shared/testdata/sd/clip/merges.txt}
[ -x "$DUAN" ] || { echo "compare_sd.sh: no duan binary at $DUAN (set DUAN=...)" >&2; exit 1; }
[ -x "$SDCPP" ] || { echo "compare_sd.sh: no sd-cli at $SDCPP (set SDCPP=...)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "compare_sd.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
for f in "$SD_MODEL" "$DUAN_MODEL" "$CLIP_MERGES"; do
    [ -e "$f" ] || { echo "compare_sd.sh: $f not found" >&2; exit 1; }
done
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/duan-compare-sd.XXXXXX)}
mkdir -p "$OUT_DIR"
PROMPT="a red ball on the grass"

wall_s() {  # "Elapsed (wall clock) time (h:mm:ss or m:ss): 1:02.33" -> seconds
    grep 'Elapsed (wall clock)' "$1" | awk '{print $NF}' |
        awk -F: '{ s = 0; for (i = 1; i <= NF; ++i) s = s * 60 + $i; printf "%.1f", s }'
}
rss_mib() { grep 'Maximum resident set size' "$1" | awk '{printf "%.0f", $NF / 1024}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

echo "sd.cpp: $SDCPP ${SDCPP_ARGS:-} ($SD_MODEL)"
echo "duan:   $DUAN ${DUAN_ARGS:-} ($DUAN_MODEL, $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "$THREADS threads, euler, $STEPS steps, cfg $CFG, seed 42, rng cpu; logs in $OUT_DIR"
echo
echo "| size | rep | s/step sd.cpp | s/step duan | ratio | end-to-end sd.cpp | duan | ratio | peak RSS sd.cpp | duan | ratio |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for size in $SIZES; do
    for rep in $(seq 1 "$REPS"); do
        sl=$OUT_DIR/sdcpp_${size}_$rep.log dl=$OUT_DIR/duan_${size}_$rep.log
        # shellcheck disable=SC2086
        /usr/bin/time -v "$SDCPP" -m "$SD_MODEL" -p "$PROMPT" --steps "$STEPS" --cfg-scale "$CFG" \
            -W "$size" -H "$size" --sampling-method euler -s 42 --rng cpu -t "$THREADS" \
            -o "$OUT_DIR/sdcpp_$size.png" ${SDCPP_ARGS:-} >"$sl" 2>&1 ||
            { echo "sd-cli failed: $sl" >&2; exit 1; }
        # shellcheck disable=SC2086
        /usr/bin/time -v "$DUAN" image -m "$DUAN_MODEL" -p "$PROMPT" --steps "$STEPS" --cfg "$CFG" \
            -W "$size" -H "$size" --sampler euler --seed 42 --rng cpu -t "$THREADS" \
            --clip-merges "$CLIP_MERGES" -o "$OUT_DIR/duan_$size.png" ${DUAN_ARGS:-} >"$dl" 2>&1 ||
            { echo "duan image failed: $dl" >&2; exit 1; }
        s_step=$(grep -o 'sampling completed, taking [0-9.]*s' "$sl" | tail -1 |
            grep -o '[0-9.]*' | awk -v n="$STEPS" '{printf "%.2f", $1 / n}')
        d_step=$(tr '\r' '\n' <"$dl" | grep -o '[0-9.]* s/step' | tail -1 | awk '{print $1}')
        s_wall=$(wall_s "$sl") d_wall=$(wall_s "$dl")
        s_rss=$(rss_mib "$sl") d_rss=$(rss_mib "$dl")
        echo "| ${size}² | $rep | $s_step | $d_step | $(ratio "$s_step" "$d_step") | $s_wall | $d_wall |" \
            "$(ratio "$s_wall" "$d_wall") | $s_rss MiB | $d_rss MiB | $(ratio "$s_rss" "$d_rss") |"
    done
done
