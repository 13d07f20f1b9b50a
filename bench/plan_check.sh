#!/usr/bin/env bash
# Checks duan plan's models against real runs on this machine (docs/PLANNING.md, "Checks"):
#   memory: predicted total within ±10% of the measured peak RSS (VmHWM)
#   speed:  predicted prefill and decode t/s within ±20% of measured, after `duan plan --calibrate`
# for a synthetic preset at 3 types × 2 context sizes. Takes a few minutes (synthesizing the f16
# file and the prefill runs dominate); the files are kept in $PLAN_CHECK_DIR for reruns.
#
#   bench/plan_check.sh [BUILD_DIR]          (default build dir: build)
#   PRESET=qwen2.5-0.5b TYPES="q4_0 q8_0 f16" CTXS="512 4096" MEM_TOL=0.10 SPEED_TOL=0.20
set -euo pipefail
BUILD=${1:-build}
DUAN=${DUAN:-$BUILD/duan}
DIR=${PLAN_CHECK_DIR:-/tmp/duan_plan_check}
PRESET=${PRESET:-qwen2.5-0.5b}
TYPES=${TYPES:-"q4_0 q8_0 f16"}
CTXS=${CTXS:-"512 4096"}
MEM_TOL=${MEM_TOL:-0.10}
SPEED_TOL=${SPEED_TOL:-0.20}
THREADS=${THREADS:-0}
mkdir -p "$DIR"
PROFILE="$DIR/profile.json"
RESULTS="$DIR/results.jsonl"
: > "$RESULTS"

"$DUAN" plan --calibrate --profile "$PROFILE" -t "$THREADS"
for t in $TYPES; do
    f="$DIR/$PRESET-$t.gguf"
    [ -f "$f" ] || "$DUAN" synth --preset "$PRESET" --type "$t" -o "$f"
    for c in $CTXS; do
        # One process per run: the peak RSS is per process.
        "$DUAN" plan --measure -m "$f" -c "$c" -t "$THREADS" --profile "$PROFILE" --json >> "$RESULTS"
    done
done

python3 - "$RESULTS" "$MEM_TOL" "$SPEED_TOL" <<'PY'
import json, sys
path, mem_tol, speed_tol = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
rows = [json.loads(l) for l in open(path) if l.strip()]
bad = 0
print(f"{'model':<40} {'ctx':>5} {'plan':>9} {'peak RSS':>9} {'err':>7} | {'pp plan':>8} {'pp meas':>8} {'err':>7} | {'tg plan':>8} {'tg meas':>8} {'err':>7}")
for r in rows:
    name = r["model"].split("/")[-1]
    ok = (abs(r["memory_error"]) <= mem_tol and abs(r["prefill_error"]) <= speed_tol
          and abs(r["decode_error"]) <= speed_tol)
    bad += not ok
    print(f"{name:<40} {r['n_ctx']:>5} {r['predicted_total_bytes']/1e6:>7.0f}MB {r['measured_peak_rss']/1e6:>7.0f}MB "
          f"{100*r['memory_error']:>+6.1f}% | {r['predicted_prefill_tps']:>8.1f} {r['measured_prefill_tps']:>8.1f} "
          f"{100*r['prefill_error']:>+6.1f}% | {r['predicted_decode_tps']:>8.2f} {r['measured_decode_tps']:>8.2f} "
          f"{100*r['decode_error']:>+6.1f}% {'ok' if ok else 'FAIL'}")
print(f"{len(rows) - bad} passed, {bad} failed")
sys.exit(1 if bad else 0)
PY
