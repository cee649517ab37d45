#!/usr/bin/env bash
# Detection latency (root): a new UERANSIM stand-in starts sending -> the
# thread ids of its nr-ue (found from RLS user data) and of its nr-gnb
# (GTP-U and RLS) are in the strategies the API serves.
#
#   scripts/bench-latency.sh [TRIALS=20] [DEBOUNCE_MS...=200 20]
#
# Runs the local API, `gtp5g-tracer --mode netdev` and the daemon; for each
# debounce setting (strategy.debounce_ms, via the environment) runs TRIALS
# fresh `ran-sim --ues 1 --rate 20` test beds. The clock starts when
# ran-sim has printed its JSON lines (the UE sends its first ping right
# after) and stops, per process, when a GET of the strategies, polled
# every 5 ms, lists its pid and all its thread ids (nr-ue: 4, nr-gnb: 5).
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"

TRIALS=${1:-20}
shift || true
DEBOUNCES=("$@")
[ $# -gt 0 ] || DEBOUNCES=(200 20)
require gtp5g-tracer ran-sim
lock_trace_pipe
set_ring_buffer_kb "${BUFFER_KB:-1408}"
start_local_api

start_tracer "$WORK/tracer.log" --mode netdev

for debounce in "${DEBOUNCES[@]}"; do
    GTP5G_OPERATOR__STRATEGY__DEBOUNCE_MS=$debounce start_daemon "$TRACEFS/trace_pipe" "$WORK/daemon-$debounce.log"
    echo "== strategy.debounce_ms = $debounce"
    python3 - "$API_URL" "$API_KEY" "$TRACER_BUILD/ran-sim" "$TRIALS" <<'PY'
import http.client, json, math, subprocess, sys, time, urllib.parse

url, key_path, ran_sim, trials = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
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

ROLES = ("ue", "gnb")
latencies = {role: [] for role in ROLES}
for trial in range(1, trials + 1):
    p = subprocess.Popen([ran_sim, "--ues", "1", "--rate", "20"], stdout=subprocess.PIPE, text=True)
    try:
        procs = {}
        for _ in range(3):  # upf, gnb, ue
            info = json.loads(p.stdout.readline())
            procs[info["role"]] = info
        t0 = time.monotonic()
        want = {role: set(procs[role]["tids"]) | {procs[role]["pid"]} for role in ROLES}
        got = {}
        while time.monotonic() - t0 < 5 and len(got) < len(ROLES):
            served = served_pids()
            for role in ROLES:
                if role not in got and want[role] <= served:
                    got[role] = (time.monotonic() - t0) * 1000
            time.sleep(0.005)
    finally:
        p.terminate()
        p.communicate()
    shown = ", ".join(f"nr-{role} pid {procs[role]['pid']}: "
                      + (f"{got[role]:.1f} ms" if role in got else "not served within 5 s")
                      for role in ROLES)
    print(f"trial {trial:2d}: {shown}", flush=True)
    for role in ROLES:
        latencies[role].append(got.get(role, math.inf))
    # Let the daemon see the exits and post the shorter list.
    time.sleep(0.5)

for role in ROLES:
    s = sorted(latencies[role])
    rank = lambda q: s[max(0, math.ceil(q * len(s)) - 1)]
    print(f"nr-{role}: p50 {rank(0.50):.1f} ms, p99 {rank(0.99):.1f} ms (nearest rank; with {len(s)} "
          f"trials p99 is the maximum), min {s[0]:.1f} ms")
PY
    stop_pid "$DAEMON_PID"
done
