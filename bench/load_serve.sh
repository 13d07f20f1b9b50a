#!/usr/bin/env bash
# Load test for `duan serve`: starts a server (fake engine by default, or a model), fires N
# concurrent clients (half streamed) for a fixed number of requests, and prints throughput,
# latency percentiles, time to first token, and how many requests got 429s or errors. The load
# runs K times (default 2); the server's resident memory after each round shows whether memory
# stays stable under load (it must not grow from round to round).
#
#   bench/load_serve.sh [--duan PATH] [--model FILE | --fake-delay-ms MS] [--parallel N]
#                       [--queue Q] [--clients C] [--requests R] [--max-tokens T] [--rounds K]
#                       [-- EXTRA SERVE OPTIONS, e.g. --cloud http://127.0.0.1:9000/v1]
#
# Figures from this script are in docs/SERVING.md. Loopback only.
set -euo pipefail
DUAN=${DUAN:-build/duan}
MODEL=""
FAKE_DELAY=10
PARALLEL=4
QUEUE=16
CLIENTS=16
REQUESTS=200
MAX_TOKENS=32
ROUNDS=2
PORT=${PORT:-18080}
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --duan) DUAN=$2; shift 2 ;;
    --model) MODEL=$2; shift 2 ;;
    --fake-delay-ms) FAKE_DELAY=$2; shift 2 ;;
    --parallel) PARALLEL=$2; shift 2 ;;
    --queue) QUEUE=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --requests) REQUESTS=$2; shift 2 ;;
    --max-tokens) MAX_TOKENS=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;  # the rest goes to `duan serve` (e.g. --cloud URL)
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

if [[ -n "$MODEL" ]]; then
  ENGINE=(-m "$MODEL")
else
  ENGINE=(--fake --fake-delay-ms "$FAKE_DELAY")
fi
"$DUAN" serve "${ENGINE[@]}" --host 127.0.0.1 --port "$PORT" --parallel "$PARALLEL" \
  --queue "$QUEUE" "${EXTRA[@]}" 2>/tmp/duan_load_serve.log &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  sleep 0.1
done

rss() { awk '/^VmRSS/ {printf "%.1f MiB", $2 / 1024}' /proc/$SERVER/status; }
echo "server RSS after start: $(rss)"
for round in $(seq "$ROUNDS"); do
echo "--- round $round"
python3 - "$PORT" "$CLIENTS" "$REQUESTS" "$MAX_TOKENS" <<'PY'
import http.client, json, sys, threading, time
port, clients, total, max_tokens = map(int, sys.argv[1:5])
lock = threading.Lock()
stats = {"ok": 0, "429": 0, "err": 0, "lat": [], "ttft": [], "tokens": 0}
next_id = [0]

def one(i):
    stream = i % 2 == 0
    body = json.dumps({"messages": [{"role": "user", "content": f"Tell story number {i}"}],
                       "max_tokens": max_tokens, "temperature": 0, "stream": stream,
                       "stream_options": {"include_usage": True}})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    t0 = time.time()
    c.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status == 429:
        r.read(); return "429", 0, None, None
    if r.status != 200:
        r.read(); return "err", 0, None, None
    ttft, tokens = None, 0
    if stream:
        done = False
        for line in r:
            line = line.strip()
            if not line.startswith(b"data: "): continue
            data = line[6:]
            if data == b"[DONE]": done = True; break
            j = json.loads(data)
            if "error" in j: return "err", 0, None, None
            if j.get("usage"): tokens = j["usage"]["completion_tokens"]
            if j["choices"] and j["choices"][0]["delta"].get("content") and ttft is None:
                ttft = time.time() - t0
        if not done: return "err", 0, None, None
    else:
        tokens = json.loads(r.read())["usage"]["completion_tokens"]
    return "ok", tokens, time.time() - t0, ttft

def worker():
    while True:
        with lock:
            if next_id[0] >= total: return
            i = next_id[0]; next_id[0] += 1
        try:
            kind, tokens, lat, ttft = one(i)
        except Exception as e:
            if stats["err"] == 0: print("first client error:", repr(e), file=sys.stderr)
            kind, tokens, lat, ttft = "err", 0, None, None
        with lock:
            stats[kind] += 1
            stats["tokens"] += tokens
            if lat is not None: stats["lat"].append(lat)
            if ttft is not None: stats["ttft"].append(ttft)

t0 = time.time()
ts = [threading.Thread(target=worker) for _ in range(clients)]
for t in ts: t.start()
for t in ts: t.join()
wall = time.time() - t0
def pct(v, p):
    v = sorted(v); return v[min(len(v) - 1, int(p * len(v)))] if v else float("nan")
print(f"requests {total}  clients {clients}  wall {wall:.2f} s")
print(f"ok {stats['ok']}  429 {stats['429']}  errors {stats['err']}")
print(f"throughput {stats['ok'] / wall:.1f} req/s  {stats['tokens'] / wall:.1f} completion tok/s")
print(f"latency p50 {pct(stats['lat'], .5)*1000:.0f} ms  p95 {pct(stats['lat'], .95)*1000:.0f} ms  max {max(stats['lat'] or [0])*1000:.0f} ms")
print(f"ttft (streamed) p50 {pct(stats['ttft'], .5)*1000:.0f} ms  p95 {pct(stats['ttft'], .95)*1000:.0f} ms")
PY
echo "server RSS after round $round: $(rss)"
done
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^duan_(requests_total|tokens_total|route_total)' || true
