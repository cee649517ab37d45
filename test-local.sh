#!/usr/bin/env bash
# Run gtp5g-operator on this machine: a local Gthulhu API, the eBPF tracer
# and the daemon, printing the strategies the API holds as they change.
#
#   sudo ./test-local.sh [--demo] [--duration N]
#
# Builds first when the binaries are missing or older than the sources.
#
#   --demo        also start ran-sim, a UERANSIM stand-in: an nr-gnb, an
#                 active nr-ue (RLS user data to the gNB, GTP-U from the gNB
#                 to a UPF echo) and an idle nr-ue (heartbeats only); report
#                 how long after their first packet the active ones' ids
#                 reached the API, and that the idle UE's did not
#   --duration N  stop by itself after N seconds (default: until Ctrl-C)
#
# Environment: API_ENDPOINT (use that API instead of starting a local one;
# then PUBLIC_KEY_PATH names its public key), LOCAL_API_LISTEN (default
# 127.0.0.1:8081), CONFIG (default config/gtp5g-operator.toml),
# CARGO_TARGET_DIR (where the daemon binary is built).
set -euo pipefail

cd "$(dirname "$(readlink -f "$0")")"
REPO=$PWD

OPERATOR=${CARGO_TARGET_DIR:-$REPO/target}/release/gtp5g-operator
TRACER=$REPO/tracer-c/build/gtp5g-tracer
RAN_SIM=$REPO/tracer-c/build/ran-sim
CONFIG=${CONFIG:-$REPO/config/gtp5g-operator.toml}
LOCAL_API_LISTEN=${LOCAL_API_LISTEN:-127.0.0.1:8081}
TRACEFS=/sys/kernel/tracing
TRACE_PIPE_LOCK=/tmp/gtp5g-operator-trace_pipe.lock

DEMO=0
DURATION=0
RUNDIR=
PIDS=()           # started children, in start order
LOCK_WAITER=      # a flock(1) waiting for the trace_pipe lock

say() { printf '==> %s\n' "$*"; }
warn() { printf 'test-local.sh: warning: %s\n' "$*" >&2; }
die() { printf 'test-local.sh: error: %s\n' "$*" >&2; exit 1; }

# The header comment above, up to its first non-comment line.
usage() { awk 'NR == 1 { next } !/^#/ { exit } { sub(/^# ?/, ""); print }' "$0"; }

parse_args() {
	while [ $# -gt 0 ]; do
		case $1 in
			--demo) DEMO=1 ;;
			--duration)
				[ $# -ge 2 ] || die "--duration needs a number of seconds"
				[[ $2 =~ ^[0-9]+$ ]] || die "--duration: '$2' is not a number of seconds"
				DURATION=$2
				shift
				;;
			-h|--help) usage; exit 0 ;;
			*) usage >&2; die "unknown argument '$1'" ;;
		esac
		shift
	done
}

check_prerequisites() {
	[ "$(id -u)" = 0 ] || die "must run as root (BPF programs and trace_pipe): sudo $0 $*"
	command -v python3 >/dev/null || die "python3 is needed to show the API's strategies (apt-get install python3)"
	[ -r /sys/kernel/btf/vmlinux ] || die "the kernel has no BTF (/sys/kernel/btf/vmlinux): the tracer needs CONFIG_DEBUG_INFO_BTF=y"
}

# True when a source is newer than the binary built from it (after a pull).
stale() {
	[ -n "$(find src config Cargo.toml Cargo.lock -newer "$OPERATOR" -print -quit)" ] ||
		[ -n "$(find tracer-c -maxdepth 1 \( -name '*.[ch]' -o -name Makefile \) -newer "$TRACER" -print -quit)" ]
}

# Builds when binaries are missing or older than their sources.
build_if_needed() {
	local why
	if ! [ -x "$OPERATOR" ] || ! [ -x "$TRACER" ] || ! [ -x "$RAN_SIM" ]; then
		why="binaries missing"
	elif stale; then
		why="sources newer than the binaries"
	else
		return 0
	fi
	if ! command -v cargo >/dev/null; then
		[ "$why" != "binaries missing" ] || die "binaries missing and cargo not in PATH (sudo resets PATH): run ./build.sh as your user first, or sudo env PATH=\"\$PATH\" $0"
		warn "$why, but cargo is not in PATH (sudo resets PATH): running the old binaries"
		return 0
	fi
	say "building ($why): ./build.sh build"
	./build.sh build
}

mount_tracefs() {
	[ -e "$TRACEFS/trace_pipe" ] && return
	say "mounting tracefs on $TRACEFS"
	mount -t tracefs nodev "$TRACEFS" || die "cannot mount tracefs on $TRACEFS"
}

# The lock the project's live tests and benchmarks take around their use of
# trace_pipe; held through fd 9 until this script exits (children get fd 9
# closed, so none of them can keep it).
hold_trace_pipe_lock() {
	exec 9>"$TRACE_PIPE_LOCK"
	flock -n 9 && return
	say "waiting for another trace_pipe user to finish (lock $TRACE_PIPE_LOCK)"
	# In the background, so that Ctrl-C interrupts the wait.
	flock 9 &
	LOCK_WAITER=$!
	wait "$LOCK_WAITER" || die "could not lock $TRACE_PIPE_LOCK"
	LOCK_WAITER=
}

# trace_pipe is one consumer queue: another reader takes lines this run
# would never see.
warn_other_readers() {
	local fd
	for fd in /proc/[0-9]*/fd/*; do
		if [ "$(readlink "$fd" 2>/dev/null)" = "$TRACEFS/trace_pipe" ]; then
			local pid=${fd#/proc/}
			pid=${pid%%/*}
			warn "pid $pid ($(cat "/proc/$pid/comm" 2>/dev/null)) already reads trace_pipe: it will take some of the events"
		fi
	done
}

# Starts "$@" in the background with output to $RUNDIR/NAME.log and records
# its pid.
start() {
	local name=$1
	shift
	"$@" >"$RUNDIR/$name.log" 2>&1 9>&- &
	PIDS+=($!)
	LAST_PID=$!
}

# Runs CHECK... until it succeeds; fails with NAME's LOG tail if PID exits
# or TIMEOUT seconds pass.
wait_until() {
	local pid=$1 timeout=$2 name=$3 log=$4
	shift 4
	local deadline=$((SECONDS + timeout))
	until "$@" 2>/dev/null; do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 20 "$log" >&2 || true
			die "$name exited during start-up (log: $log)"
		fi
		[ $SECONDS -lt $deadline ] || die "$name not ready after ${timeout}s (log: $log)"
		sleep 0.05
	done
}

# Waits until FILE contains PATTERN (see wait_until).
wait_for_line() {
	local file=$1 pattern=$2 pid=$3 timeout=$4 name=$5
	wait_until "$pid" "$timeout" "$name" "$file" grep -q -- "$pattern" "$file"
}

start_api() {
	if [ -n "${API_ENDPOINT:-}" ] && [ "${API_ENDPOINT%/}" != "http://$LOCAL_API_LISTEN" ]; then
		ENDPOINT=$API_ENDPOINT
		KEY=${PUBLIC_KEY_PATH:-/var/lib/gtp5g-operator/jwt_public_key.pem}
		[ -r "$KEY" ] || die "API_ENDPOINT=$ENDPOINT is set: its public key $KEY is not readable (set PUBLIC_KEY_PATH)"
		say "using the Gthulhu API at $ENDPOINT (key $KEY)"
		return
	fi
	ENDPOINT=http://$LOCAL_API_LISTEN
	KEY=$RUNDIR/api-state/jwt_public_key.pem
	say "starting the local Gthulhu API on $LOCAL_API_LISTEN"
	start local-api "$OPERATOR" local-api --listen "$LOCAL_API_LISTEN" --state-dir "$RUNDIR/api-state"
	# Up when /health answers; the key pair exists before the server listens.
	wait_until "$LAST_PID" 20 "the local API (port in use? set LOCAL_API_LISTEN=127.0.0.1:PORT)" "$RUNDIR/local-api.log" \
		python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/health", timeout=1)' "$ENDPOINT"
}

start_tracer() {
	say "starting the tracer: gtp5g-tracer --mode auto"
	start tracer "$TRACER" --mode auto
	wait_for_line "$RUNDIR/tracer.log" "probes attached" "$LAST_PID" 30 gtp5g-tracer
	say "$(grep -m1 'probes attached' "$RUNDIR/tracer.log")"
}

start_daemon() {
	say "starting the daemon: gtp5g-operator run (API $ENDPOINT)"
	start operator "$OPERATOR" run --config "$CONFIG" --api-endpoint "$ENDPOINT" --public-key "$KEY"
	wait_for_line "$RUNDIR/operator.log" "reading trace lines" "$LAST_PID" 20 gtp5g-operator
}

# Prints the API's strategies whenever they change and, for each demo
# process listed in $RUNDIR/demo (lines "<start time> <ran-sim JSON>"), how
# long after it started sending all of its ids were in the API; for the idle
# UE and the UPF stand-in, that they are still not there IDLE_CHECK_S later.
start_watcher() {
	python3 -u - "$ENDPOINT" "$KEY" "$RUNDIR/demo" "$T0" >"$RUNDIR/watch.out" 2>&1 9>&- <<'PY' &
import json, sys, time, urllib.error, urllib.request

endpoint, key_path, demo_path, t0 = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3], float(sys.argv[4])
IDLE_CHECK_S = 5.0

def say(text):
    print(f"[{time.time() - t0:7.2f}s] {text}")

def call(method, path, body=None, token=None):
    req = urllib.request.Request(endpoint + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)

def new_token():
    with open(key_path) as f:
        return call("POST", "/api/v1/auth/token", {"public_key": f.read()})["token"]

def proc_field(pid, name):
    try:
        with open(f"/proc/{pid}/{name}") as f:
            return f.read()
    except OSError:
        return None

def describe(pids):
    """pids grouped by process: 'nr-gnb 1234 [1235 1236]'."""
    groups = {}
    for pid in pids:
        status = proc_field(pid, "status") or ""
        tgid = next((l.split()[1] for l in status.splitlines() if l.startswith("Tgid:")), None)
        groups.setdefault(int(tgid) if tgid else None, []).append(pid)
    parts = []
    for tgid, ids in groups.items():
        if tgid is None:
            parts.append("exited " + " ".join(map(str, ids)))
            continue
        comm = (proc_field(tgid, "comm") or "?").strip()
        others = [str(i) for i in ids if i != tgid]
        main = str(tgid) if tgid in ids else f"({tgid})"
        parts.append(f"{comm} {main} threads [{' '.join(others)}]")
    return "; ".join(parts) if parts else "none"

def demo_processes():
    try:
        with open(demo_path) as f:
            rows = [l.split(" ", 1) for l in f if l.strip()]
    except OSError:
        return []
    return [(float(t), json.loads(j)) for t, j in rows]

def expected_boost(p):
    """nr-gnb and active nr-ue carry user data; the idle UE and the UPF do not."""
    return p["role"] == "gnb" or (p["role"] == "ue" and not p["idle"])

def demo_label(p):
    kind = {"gnb": "gNB", "upf": "UPF stand-in", "ue": "idle UE" if p.get("idle") else "active UE"}
    return f"{p['name']} pid {p['pid']} ({kind[p['role']]})"

token, last, last_error, reported, wrongly = None, None, None, set(), set()
while True:
    try:
        token = token or new_token()
        body = call("GET", "/api/v1/scheduling/strategies", token=token)
        last_error = None
    except urllib.error.HTTPError as e:
        if e.code == 401:
            token = None  # expired, or the API restarted with a new key
        error = f"API answered HTTP {e.code}: {e.read().decode(errors='replace').strip()}"
    except (urllib.error.URLError, OSError) as e:
        error = f"API unreachable: {e}"
    else:
        error = None
    if error:
        if error != last_error:
            say(error)
        last_error = error
        time.sleep(0.5)
        continue
    entries = body.get("scheduling") or []
    pids = sorted({e["pid"] for e in entries if e.get("pid")})
    if pids != last:
        others = len(entries) - len(pids)
        extra = f" (+{others} selector strategies)" if others > 0 else ""
        say(f"API holds {len(pids)} pid strategies{extra}: {describe(pids)}")
        last = pids
    now = time.time()
    for started, p in demo_processes():
        ids = {p["pid"], *p["tids"]}
        held = ids & set(pids)
        what = demo_label(p)
        if expected_boost(p):
            if p["pid"] not in reported and ids <= held:
                reported.add(p["pid"])
                say(f"BOOSTED {what}: all {len(ids)} ids in the API "
                    f"{now - started:.2f}s after ran-sim started")
        elif held and p["pid"] not in wrongly:
            wrongly.add(p["pid"])
            say(f"UNEXPECTED: {what} is in the API ({len(held)} of {len(ids)} ids)")
        elif not held and p["pid"] not in reported and now - started >= IDLE_CHECK_S:
            reported.add(p["pid"])
            say(f"not boosted, as expected: {what}: none of its {len(ids)} ids in the API "
                f"{now - started:.1f}s after the start")
    time.sleep(0.1)
PY
	PIDS+=($!)
	# Its output is the point of this script: show it as it comes.
	tail -n +1 -f "$RUNDIR/watch.out" --pid $$ 9>&- &
	PIDS+=($!)
}

# The UERANSIM stand-in: nr-gnb, one active and one idle nr-ue, and the
# UPF echo (the ran-sim process itself).
start_ran_sim() {
	local started json lines=4
	started=$(date +%s.%N)
	start ran-sim "$RAN_SIM" --ues 1 --idle-ues 1 --rate 10
	wait_until "$LAST_PID" 10 ran-sim "$RUNDIR/ran-sim.log" ran_sim_printed $lines
	while read -r json; do
		printf '%s %s\n' "$started" "$json" >>"$RUNDIR/demo"
		[[ $json =~ \"pid\":([0-9]+).*\"tids\":\[([0-9,]*)\] ]] || die "unexpected ran-sim output: $json"
		say "demo: $(describe_demo "$json") pid ${BASH_REMATCH[1]}, threads ${BASH_REMATCH[2]//,/ }"
	done < <(grep -m $lines '"role":' "$RUNDIR/ran-sim.log")
}

# True once ran-sim has printed N JSON lines (one per process).
ran_sim_printed() {
	[ "$(grep -c '"role":' "$RUNDIR/ran-sim.log")" -ge "$1" ]
}

describe_demo() {
	case $1 in
		*'"role":"gnb"'*) echo "nr-gnb (RLS on 127.0.0.1:4997, GTP-U to the UPF)" ;;
		*'"idle":true'*) echo "nr-ue, IDLE (heartbeats only: must not be boosted)" ;;
		*'"role":"ue"'*) echo "nr-ue, ACTIVE (10 pings/s as RLS user data to nr-gnb)" ;;
		*) echo "ran-sim, UPF stand-in on 127.0.0.1:2152 (not a target)" ;;
	esac
}

stop_all() {
	trap - EXIT INT TERM
	[ -z "$LOCK_WAITER" ] || kill -TERM "$LOCK_WAITER" 2>/dev/null || true
	[ ${#PIDS[@]} -gt 0 ] || return 0
	say "stopping"
	local i pid
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		kill -TERM "${PIDS[i]}" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			warn "pid $pid did not stop on SIGTERM within 5s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
	wait 2>/dev/null || true
	if grep -q '"role":"summary"' "$RUNDIR/ran-sim.log" 2>/dev/null; then
		say "ran-sim: $(grep -m1 '"role":"summary"' "$RUNDIR/ran-sim.log")"
	fi
	if grep -q "probes attached" "$RUNDIR/tracer.log" 2>/dev/null; then
		say "tracer: $(tail -n 1 "$RUNDIR/tracer.log")"
	fi
	say "all stopped; logs in $RUNDIR"
}

main() {
	parse_args "$@"
	check_prerequisites "$@"
	build_if_needed
	[ -x "$OPERATOR" ] || die "$OPERATOR missing after the build (CARGO_TARGET_DIR differs from the build's?)"
	mount_tracefs

	RUNDIR=$(mktemp -d /tmp/gtp5g-local.XXXXXX)
	trap stop_all EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	hold_trace_pipe_lock
	warn_other_readers
	say "logs in $RUNDIR"
	# The time origin of the watcher's timestamps: after any build.
	T0=$(date +%s.%N)

	start_api
	start_tracer
	start_daemon
	start_watcher
	if [ "$DEMO" = 1 ]; then
		start_ran_sim
	fi
	if [ "$DURATION" -gt 0 ]; then
		say "running for ${DURATION}s"
	else
		say "running; Ctrl-C stops everything"
	fi
	local end=$((SECONDS + DURATION))
	while [ "$DURATION" = 0 ] || [ $SECONDS -lt $end ]; do
		sleep 0.5 &
		wait $! || true
	done
}

main "$@"
