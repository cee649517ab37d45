# shellcheck shell=bash
# What the project's scripts share (sourced, not run): messages, the
# trace_pipe lock, waiting, starting and stopping the project's programs, the
# API client and apt. Sourcing defines functions and constants only: no temp
# dir, no trap, no redirection. Functions that start programs set
# BG_PID/TRACER_PID/DAEMON_PID/API_URL/API_KEY and add to STARTED, which
# stop_started stops.
#
#   . scripts/lib.sh
#   trap stop_started EXIT
#   lock_trace_pipe
#   start_local_api "$dir"
#   start_tracer "$dir/tracer.log" --mode netdev
#   start_daemon "$dir/operator.log" --trace-pipe "$TRACEFS/trace_pipe"
#   api_strategies
#
# Environment (read when sourced): OPERATOR (default: the release build
# under CARGO_TARGET_DIR or target/), TRACER_BUILD (tracer-c/build), TRACEFS.

GTP5G_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OPERATOR=${OPERATOR:-${CARGO_TARGET_DIR:-$GTP5G_REPO/target}/release/gtp5g-operator}
TRACER_BUILD=${TRACER_BUILD:-$GTP5G_REPO/tracer-c/build}
TRACEFS=${TRACEFS:-/sys/kernel/tracing}
# trace_pipe is one consumer queue: every test and benchmark that reads it
# (the Rust tests too) serialises on this lock.
TRACE_PIPE_LOCK=/tmp/gtp5g-operator-trace_pipe.lock
# The machine's CPUs are shared: a benchmark's figures, or a VM guest, are
# disturbed by another's, so each holds this lock while it runs.
BENCH_LOCK=/tmp/gtp5g-bench.lock

say() { printf '==> %s\n' "$*" >&2; }
warn() { printf '%s: warning: %s\n' "${0##*/}" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "${0##*/}" "$*" >&2
	exit 1
}

# --- trace_pipe -------------------------------------------------------------

# Takes the trace_pipe lock for the rest of this shell's life (or until
# unlock_trace_pipe), then warns about readers that hold trace_pipe anyway.
# Held through fd 9, which start_bg closes in children: none of them can
# keep the lock after this shell exits.
lock_trace_pipe() {
	exec 9>"$TRACE_PIPE_LOCK"
	wait_lock 9 "$TRACE_PIPE_LOCK" "another trace_pipe user"
	local readers
	readers=$(trace_pipe_readers)
	[ -z "$readers" ] || warn "already reading trace_pipe, so taking some of the events: $readers"
}

unlock_trace_pipe() { exec 9>&-; }

# Takes the benchmark lock for the rest of this shell's life, on fd 8 (closed
# in children, as fd 9). Take it before the trace_pipe lock, as a caller
# running `flock $BENCH_LOCK SCRIPT` does. Under such a caller the lock is
# held already, on a descriptor this shell inherited: locking the file anew
# would wait for ourselves.
lock_bench() {
	local fd
	for fd in /proc/"$$"/fd/*; do
		[ "$(readlink "$fd")" != "$BENCH_LOCK" ] || return 0
	done
	exec 8>"$BENCH_LOCK"
	wait_lock 8 "$BENCH_LOCK" "another benchmark or VM guest"
}

# wait_lock FD FILE WHO: flock on FD (FILE open there), saying whom it
# waits for when it has to.
wait_lock() {
	flock -n "$1" && return 0
	say "waiting for $3 to finish (lock $2)"
	flock "$1" || die "could not lock $2"
}

# Prints "PID (COMM)" of every process with trace_pipe open, space-separated.
trace_pipe_readers() {
	local pid
	# Processes come and go under find: it then exits 1.
	{ find /proc/[0-9]*/fd -lname "$TRACEFS/trace_pipe" 2>/dev/null || true; } | cut -d/ -f3 | sort -un |
		while read -r pid; do
			printf '%s (%s) ' "$pid" "$(cat "/proc/$pid/comm" 2>/dev/null)"
		done
}

mount_tracefs() {
	[ -e "$TRACEFS/trace_pipe" ] && return 0
	say "mounting tracefs on $TRACEFS"
	mount -t tracefs nodev "$TRACEFS" || die "cannot mount tracefs on $TRACEFS"
}

# --- waiting ----------------------------------------------------------------

now_us() { echo "${EPOCHREALTIME/./}"; }

# poll PID LOG TIMEOUT DESC CMD...: runs CMD (quietly) every POLL_S seconds
# (default 0.05) until it succeeds. Fails, saying DESC, after TIMEOUT
# seconds or as soon as PID ("-": none) has exited, then with the tail of
# LOG ("-": none).
poll() {
	local pid=$1 log=$2 timeout=$3 desc=$4
	shift 4
	local deadline=$(($(now_us) + timeout * 1000000))
	until "$@" >/dev/null 2>&1; do
		if [ "$pid" != - ] && ! kill -0 "$pid" 2>/dev/null; then
			printf '%s: %s: pid %s exited\n' "${0##*/}" "$desc" "$pid" >&2
			show_log "$log"
			return 1
		fi
		if [ "$(now_us)" -ge "$deadline" ]; then
			printf '%s: %s: not within %s s\n' "${0##*/}" "$desc" "$timeout" >&2
			show_log "$log"
			return 1
		fi
		sleep "${POLL_S:-0.05}"
	done
}

show_log() {
	[ "$1" != - ] && [ -e "$1" ] || return 0
	printf -- '--- last lines of %s:\n' "$1" >&2
	tail -n 20 "$1" >&2
}

# wait_until TIMEOUT DESC CMD...: polls CMD until it succeeds; fails after
# TIMEOUT seconds, saying DESC.
wait_until() {
	local timeout=$1 desc=$2
	shift 2
	poll - - "$timeout" "$desc" "$@"
}

# wait_ready FILE PID TIMEOUT [LOG]: waits for the ready file that
# gtp5g-tracer and `gtp5g-operator run` write (--ready-file) once they
# work; fails early, with LOG's tail, if PID exits first.
wait_ready() {
	local file=$1 pid=$2 timeout=$3 log=${4:--}
	poll "$pid" "$log" "$timeout" "$(basename "$file"): pid $pid not ready" test -s "$file"
}

# --- starting and stopping --------------------------------------------------

# start_bg LOG CMD...: CMD in the background, output to LOG ("-": this
# shell's), without the locks' fds; sets BG_PID and adds it to STARTED.
start_bg() {
	local log=$1
	shift
	if [ "$log" = - ]; then
		"$@" 8>&- 9>&- &
	else
		"$@" >"$log" 2>&1 8>&- 9>&- &
	fi
	BG_PID=$!
	STARTED+=("$BG_PID")
}

# start_tracer LOG ARGS...: gtp5g-tracer ARGS logging to LOG; returns once
# its probes are attached (ready file LOG without .log, plus .ready) and
# sets TRACER_PID.
start_tracer() {
	local log=$1 ready=${1%.log}.ready
	shift
	rm -f "$ready"
	start_bg "$log" "$TRACER_BUILD/gtp5g-tracer" --ready-file "$ready" "$@"
	TRACER_PID=$BG_PID
	wait_ready "$ready" "$TRACER_PID" 30 "$log"
}

# start_daemon LOG ARGS...: `gtp5g-operator run ARGS` against the API in
# API_URL/API_KEY, logging to LOG; returns once it has opened its trace
# source (its ready file, as for start_tracer) and sets DAEMON_PID.
# Extra environment comes from the caller.
start_daemon() {
	local log=$1 ready=${1%.log}.ready
	shift
	rm -f "$ready"
	start_bg "$log" "$OPERATOR" run --ready-file "$ready" \
		--api-endpoint "$API_URL" --public-key "$API_KEY" "$@"
	DAEMON_PID=$BG_PID
	wait_ready "$ready" "$DAEMON_PID" 20 "$log"
}

# start_local_api DIR [LISTEN]: `gtp5g-operator local-api` on LISTEN
# (default: a free loopback port) with its state in DIR/api-state, logging
# to DIR/local-api.log; returns once it hands out tokens and answers, and
# sets API_URL and API_KEY.
start_local_api() {
	local dir=$1 listen=${2:-}
	[ -n "$listen" ] || listen=127.0.0.1:$(free_port)
	API_URL=http://$listen
	API_KEY=$dir/api-state/jwt_public_key.pem
	start_bg "$dir/local-api.log" "$OPERATOR" local-api --listen "$listen" --state-dir "$dir/api-state"
	poll "$BG_PID" "$dir/local-api.log" 20 "local API on $listen (port in use?)" api_strategies
}

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# stop_pid PID: SIGTERM (the programs log their final counters on the way
# out), SIGKILL if it is still there 5 s later; reaps it and drops it from
# STARTED.
stop_pid() {
	local pid=$1 other keep=()
	kill -TERM "$pid" 2>/dev/null || true
	poll - - 5 "pid $pid stopping on SIGTERM" not_running "$pid" || kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	for other in ${STARTED[@]+"${STARTED[@]}"}; do
		[ "$other" = "$pid" ] || keep+=("$other")
	done
	STARTED=(${keep[@]+"${keep[@]}"})
}

not_running() { ! kill -0 "$1" 2>/dev/null; }

# Stops what start_bg started, newest first: the daemon before the tracer
# and the API, so that its last POST is answered.
stop_started() {
	while [ -n "${STARTED[*]+set}" ] && [ ${#STARTED[@]} -gt 0 ]; do
		stop_pid "${STARTED[-1]}"
	done
}

# --- what a process costs ---------------------------------------------------

clk_tck() { getconf CLK_TCK; }

# utime+stime of a process (all its threads), in clock ticks: "user sys".
cpu_ticks() {
	# Fields 14 and 15, counted after the ")" that ends the comm.
	sed 's/.*) //' "/proc/$1/stat" | awk '{print $12, $13}'
}

peak_rss_kb() {
	awk '/^VmHWM:/ {print $2}' "/proc/$1/status"
}

# --- the Gthulhu API, through the project's own client ----------------------

# The pids the API at API_URL holds, one a line, sorted.
api_strategies() {
	API_ENDPOINT=$API_URL PUBLIC_KEY_PATH=$API_KEY "$OPERATOR" api strategies
}

# --- packages ---------------------------------------------------------------

is_debian_root() {
	[ "$(id -u)" = 0 ] && [ -r /etc/os-release ] &&
		grep -Eq '^ID(_LIKE)?=.*\b(debian|ubuntu)\b' /etc/os-release
}

# apt_install PACKAGE...: output on stderr, so callers' stdout stays theirs.
# Stale package lists give 404s: on failure refresh them and retry once.
apt_install() {
	local apt=(env DEBIAN_FRONTEND=noninteractive apt-get)
	if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
		say "apt-get update (no package lists yet)"
		"${apt[@]}" update >&2 || return 1
	fi
	say "apt-get install -y $*"
	"${apt[@]}" install -y --no-install-recommends "$@" >&2 && return 0
	say "apt-get install failed; running apt-get update and retrying once"
	"${apt[@]}" update >&2 && "${apt[@]}" install -y --no-install-recommends "$@" >&2
}
