#!/usr/bin/env bash
# Detection latency (root): a new process named nr-gnb sends its first
# GTP-U packet -> its thread ids are in the strategies the API serves.
#
#   scripts/bench-latency.sh [TRIALS=20] [DEBOUNCE_MS...=200 20]
#
# Runs the local API, `gtp5g-tracer --mode netdev` and the daemon; for each
# debounce setting (strategy.debounce_ms, via the environment) runs TRIALS
# fresh `gtpu-traffic --name nr-gnb --threads 2` processes. The clock
# starts when the process prints its JSON line (its threads send their
# first packets right after) and stops when a GET of the strategies,
# polled every 5 ms, lists its pid and both thread ids.
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"

TRIALS=${1:-20}
shift || true
DEBOUNCES=("$@")
[ $# -gt 0 ] || DEBOUNCES=(200 20)
require gtp5g-tracer gtpu-traffic
lock_trace_pipe
set_ring_buffer_kb "${BUFFER_KB:-1408}"
start_local_api

"$TRACER_BUILD/gtp5g-tracer" --mode netdev >"$WORK/tracer.log" 2>&1 &
STARTED+=($!)
for _ in $(seq 100); do
    grep -qs "probes attached" "$WORK/tracer.log" && break
    sleep 0.1
done
grep -qs "probes attached" "$WORK/tracer.log" || die "tracer did not attach: $(cat "$WORK/tracer.log")"

for debounce in "${DEBOUNCES[@]}"; do
    GTP5G_OPERATOR__STRATEGY__DEBOUNCE_MS=$debounce start_daemon "$TRACEFS/trace_pipe" "$WORK/daemon-$debounce.log"
    echo "== strategy.debounce_ms = $debounce"
    python3 - "$API_URL" "$API_KEY" "$TRACER_BUILD/gtpu-traffic" "$TRIALS" <<'PY'
import http.client, json, math, subprocess, sys, time, urllib.parse

url, key_path, traffic, trials = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
u = urllib.parse.urlsplit(url)
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)

def call(method, path, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise SystemExit(f"{method} {path}: HTTP {resp.status}")
    return json.loads(data)

with open(key_path) as f:
    token = call("POST", "/api/v1/auth/token", {"public_key": f.read()})["token"]

def served_pids():
    # An empty list is served as null.
    listed = call("GET", "/api/v1/scheduling/strategies", token=token)["scheduling"] or []
    return {s.get("pid") for s in listed}

latencies = []
for trial in range(1, trials + 1):
    p = subprocess.Popen([traffic, "--name", "nr-gnb", "--threads", "2", "--count", "0",
                          "--interval-ms", "50", "--linger"], stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(p.stdout.readline())
        t0 = time.monotonic()
        want = set(info["tids"]) | {info["pid"]}
        latency = None
        while time.monotonic() - t0 < 5:
            if want <= served_pids():
                latency = (time.monotonic() - t0) * 1000
                break
            time.sleep(0.005)
    finally:
        p.terminate()
        p.wait()
    print(f"trial {trial:2d}: pid {info['pid']} tids {info['tids']}: "
          + (f"{latency:.1f} ms" if latency is not None else "not served within 5 s"), flush=True)
    latencies.append(latency if latency is not None else math.inf)
    # Let the daemon see the exit and post the shorter list.
    time.sleep(0.5)

s = sorted(latencies)
rank = lambda q: s[max(0, math.ceil(q * len(s)) - 1)]
print(f"p50 {rank(0.50):.1f} ms, p99 {rank(0.99):.1f} ms (nearest rank; with {len(s)} trials p99 is the maximum), "
      f"min {s[0]:.1f} ms")
PY
    stop_pid "$DAEMON_PID"
done
