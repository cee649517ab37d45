# Shared by scripts/bench-*.sh (sourced, not run): paths, the trace_pipe
# lock, the local API, and /proc and tracefs readings.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TRACEFS=${TRACEFS:-/sys/kernel/tracing}
OPERATOR=${OPERATOR:-${CARGO_TARGET_DIR:-$REPO/target}/release/gtp5g-operator}
TRACER_BUILD=${TRACER_BUILD:-$REPO/tracer-c/build}
CLK_TCK=$(getconf CLK_TCK)
WORK=$(mktemp -d /tmp/gtp5g-bench.XXXXXX)
STARTED=()

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

require() {
    [ "$(id -u)" = 0 ] || die "needs root (BPF, tracefs)"
    [ -x "$OPERATOR" ] || die "no $OPERATOR: cargo build --release (or set OPERATOR=)"
    [ -e "$TRACEFS/trace_pipe" ] || mount -t tracefs nodev "$TRACEFS" || die "no tracefs at $TRACEFS"
    for b in "$@"; do
        [ -x "$TRACER_BUILD/$b" ] || die "no $TRACER_BUILD/$b: make -C tracer-c"
    done
}

# Stops what this script started, by pid, then removes its temp dir.
cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${STARTED[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    [ -z "${RESTORE_BUFFER_KB:-}" ] || echo "$RESTORE_BUFFER_KB" > "$TRACEFS/buffer_size_kb"
    rm -rf "$WORK"
}
trap cleanup EXIT

# The kernel's per-CPU ring buffer size for the run, restored on exit. A
# buffer nobody has expanded is a few kB, which overflows within
# microseconds of a flood whoever reads it; 1408 kB is what the kernel
# expands it to when tracing is first used.
set_ring_buffer_kb() {
    local old
    old=$(awk '{print $1}' "$TRACEFS/buffer_size_kb")
    if [ "$old" != "$1" ]; then
        echo "$1" > "$TRACEFS/buffer_size_kb"
        RESTORE_BUFFER_KB=$old
    fi
}

# trace_pipe is one consumer queue: the live tests take this lock too.
lock_trace_pipe() {
    exec 9>/tmp/gtp5g-operator-trace_pipe.lock
    flock 9
    local other
    other=$(other_trace_pipe_readers)
    [ -z "$other" ] || echo "warning: other processes hold trace_pipe open: $other" >&2
}

other_trace_pipe_readers() {
    { find /proc/[0-9]*/fd -lname "$TRACEFS/trace_pipe" 2>/dev/null || true; } | cut -d/ -f3 | sort -u | tr '\n' ' '
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts `gtp5g-operator local-api` on a free port; sets API_URL and API_KEY.
start_local_api() {
    local port
    port=$(free_port)
    "$OPERATOR" local-api --listen "127.0.0.1:$port" --state-dir "$WORK/api" >"$WORK/local-api.log" 2>&1 &
    STARTED+=($!)
    API_URL="http://127.0.0.1:$port"
    API_KEY="$WORK/api/jwt_public_key.pem"
    for _ in $(seq 100); do
        [ -s "$API_KEY" ] && curl -sf "$API_URL/health" >/dev/null && return 0
        sleep 0.1
    done
    die "local API did not come up: $(cat "$WORK/local-api.log")"
}

# Starts the daemon on $1 (a trace_pipe or FIFO) against the local API,
# logging to $2; sets DAEMON_PID. Extra environment comes from the caller.
start_daemon() {
    "$OPERATOR" run --trace-pipe "$1" --api-endpoint "$API_URL" --public-key "$API_KEY" \
        --log-format json --log-level info >"$2" 2>&1 &
    DAEMON_PID=$!
    STARTED+=("$DAEMON_PID")
    log_has "$2" "reading trace lines" 5 || die "daemon did not open $1: $(cat "$2")"
}

# Whether file $1 gets a line containing $2 within $3 seconds.
log_has() {
    for _ in $(seq $(($3 * 20))); do
        grep -qs "$2" "$1" && return 0
        sleep 0.05
    done
    return 1
}

# Starts gtp5g-tracer with the given arguments, logging to $1; returns once
# its probes are attached and sets TRACER_PID.
start_tracer() {
    local log=$1
    shift
    "$TRACER_BUILD/gtp5g-tracer" "$@" >"$log" 2>&1 &
    TRACER_PID=$!
    STARTED+=("$TRACER_PID")
    log_has "$log" "probes attached" 10 || die "tracer did not attach: $(cat "$log")"
}

# SIGTERM and wait: the daemon logs its final counters on the way out.
stop_pid() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# utime+stime of a process (all its threads), in clock ticks: "user sys".
cpu_ticks() {
    # Fields 14 and 15, counted after the ")" that ends the comm.
    sed 's/.*) //' "/proc/$1/stat" | awk '{print $12, $13}'
}

# Nanoseconds on CPU, summed over the process's live threads (schedstat:
# finer than the 10 ms ticks of /proc/PID/stat).
run_ns() {
    cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {print s + 0}'
}

peak_rss_kb() {
    awk '/^VmHWM:/ {print $2}' "/proc/$1/status"
}

# Sum of a per-CPU ring buffer statistic ("read events", "overrun").
ring_stat() {
    cat "$TRACEFS"/per_cpu/cpu*/stats | awk -v k="$1:" 'index($0, k) == 1 {s += $NF} END {print s + 0}'
}

# A field of the daemon's last "counters" log line.
counter() {
    jq -r "select(.message == \"counters\") | .$1" "$2" | tail -1
}
