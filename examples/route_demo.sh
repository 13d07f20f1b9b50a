#!/usr/bin/env bash
# Device <-> cloud routing, end to end on loopback (README "Device and cloud"):
#   a "cloud" duan server on :8091 and a "device" duan server on :8090 pointed at it; then
#   1. a simple request, answered on the device;
#   2. a hard request (complexity score >= 0.6), routed to the cloud;
#   3. the same hard request marked private, kept on the device;
#   4. the cloud killed while 8 hard requests run there: every one still gets its answer;
#   5. later hard requests: the cloud is unreachable, then marked down; answered on the device.
# Every answer prints where it ran and why (the X-Duan-Route header).
#
#   examples/route_demo.sh [BUILD_DIR] [MODEL.gguf]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DUAN=${1:-$ROOT/build}/duan
MODEL=${2:-$ROOT/../shared/testdata/models/stories260K.gguf}
DEV=http://127.0.0.1:8090 CLOUD_PORT=8091
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT

wait_up() { for _ in $(seq 100); do curl -sf "$1/health" >/dev/null && return; sleep 0.1; done; echo "no server at $1" >&2; exit 1; }
# ask NAME [curl args...] -> "NAME: <route header> | <first words of the answer>"
ask() {
    local name=$1; shift
    local h b; h=$(mktemp -p "$TMP"); b=$(mktemp -p "$TMP")
    curl -s -D "$h" -o "$b" "$DEV/v1/chat/completions" -H 'Content-Type: application/json' "$@"
    local route; route=$(grep -i '^x-duan-route:' "$h" | cut -d' ' -f2- | tr -d '\r')
    local text; text=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(" ".join(d["choices"][0]["message"]["content"].split())[:50] if "choices" in d else d)' "$b")
    printf '%-28s %-40s | %s\n' "$name" "$route" "$text"
}
body() { printf '{"messages":[{"role":"user","content":"%s"}],"max_tokens":%d,"temperature":0}' "$1" "$2"; }
HARD='Prove step by step and explain why: is it true? why? how? which? ```x```'

# The cloud: any OpenAI-compatible endpoint; here a second duan, one thread and one sequence at a
# time so that requests queue there.
"$DUAN" serve -m "$MODEL" --port $CLOUD_PORT -t 1 --parallel 1 --queue 64 2>"$TMP/cloud.log" &
CLOUD_PID=$!
"$DUAN" serve -m "$MODEL" --port 8090 --cloud http://127.0.0.1:$CLOUD_PORT/v1 2>"$TMP/device.log" &
wait_up http://127.0.0.1:$CLOUD_PORT
wait_up $DEV

ask "1. simple" -d "$(body 'Tell me a story about a cat.' 40)"
ask "2. hard" -d "$(body "$HARD" 40)"
ask "3. hard, private" -H 'X-Duan-Private: 1' -d "$(body "$HARD" 40)"
ask "3b. hard, with an e-mail" -d "$(body "$HARD mail me at ana@example.com" 40)"

echo "4. eight hard requests to the cloud; the cloud is killed 0.3 s in:"
pids=()
for i in $(seq 8); do
    ( ask "   request $i" -d "$(body "$HARD $i" 400)" > "$TMP/r$i" ) &
    pids+=($!)
done
sleep 0.3
{ kill -9 $CLOUD_PID; wait $CLOUD_PID; } 2>/dev/null || true
wait "${pids[@]}"
for i in $(seq 8); do cat "$TMP/r$i"; done
ask "5. hard, cloud gone" -d "$(body "$HARD" 40)"
ask "6. hard, cloud still gone" -d "$(body "$HARD" 40)"
echo
curl -s $DEV/metrics | grep -E '^duan_(route_total|tokens_total)'
